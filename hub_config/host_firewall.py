"""Applies :mod:`hub_config.host_rules` to the host with ``iptables`` (I/O)."""

from __future__ import annotations

import os
import shutil
import subprocess

from . import host_rules

WHY = (
    "user containers can reach every service on this host that listens on all addresses "
    "and the cloud metadata address 169.254.169.254 (see docs/docker.md)"
)


def bridges() -> set[str]:
    """The network interfaces the host has now."""
    try:
        return set(os.listdir("/sys/class/net"))
    except OSError:
        return set()


def _iptables(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", *args], capture_output=True, text=True, timeout=60)


def close_host(network: str, bridge: str, gateway: str, ports: list[int]) -> str | None:
    """Install the rules of ``network`` (its interface ``bridge``, reaching ``ports`` on
    ``gateway``) and delete those of removed networks; return a one-line warning when
    they cannot be installed (not root, no iptables, a chain missing), else None."""
    if os.geteuid() != 0:
        return f"dlhub: warning: the hub does not run as root, so {WHY}; run it as root."
    if shutil.which("iptables") is None:
        return f"dlhub: warning: iptables is not installed, so {WHY}; install iptables."
    current = []
    for chain in host_rules.CHAINS:
        listed = _iptables("-w", "-S", chain)
        if listed.returncode != 0:
            problem = listed.stderr.strip().splitlines()[-1:] or ["failed"]
            return (
                f"dlhub: warning: cannot read the iptables chain {chain} ({problem[0]}), "
                f"so {WHY}; check that Docker manages iptables."
            )
        current += host_rules.parse_listing(listed.stdout)
    wanted = host_rules.wanted_rules(bridge, network, gateway, ports)
    change = host_rules.plan(current, wanted, bridge, bridges())
    for rule in change.delete:
        # another hub may have deleted it already: not an error
        _iptables(*host_rules.iptables_args(rule, "-D"))
    for position, rule in change.insert:
        done = _iptables(*host_rules.iptables_args(rule, "-I", position))
        if done.returncode != 0:
            return f"dlhub: warning: iptables refused a rule ({done.stderr.strip()}), so {WHY}."
    return None


def forget_removed_networks() -> None:
    """Delete the rules of networks whose bridge interface is gone (as :func:`close_host`
    does at each start); nothing when iptables cannot be used."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return
    current = []
    for chain in host_rules.CHAINS:
        listed = _iptables("-w", "-S", chain)
        if listed.returncode == 0:
            current += host_rules.parse_listing(listed.stdout)
    for rule in host_rules.plan(current, [], "", bridges()).delete:
        _iptables(*host_rules.iptables_args(rule, "-D"))
