"""The host's packet-filter rules for the docker backend's user network (pure).

User containers may reach, on the host, only the hub's API port and the GPU scheduler's
port, and nothing at a link-local address (169.254.0.0/16: the cloud metadata service at
169.254.169.254 among them). Everything else they send elsewhere (the internet: pip
install) is left alone. Two chains carry the rules, each rule matching packets that come
in on the network's bridge interface:

- ``INPUT`` (packets to the host itself, on any of its addresses): replies of connections
  the host opened (the hub and the proxy reach the containers), the allowed ports on the
  gateway address, then a refusal of everything else;
- ``DOCKER-USER`` (packets the host forwards): replies go on, link-local is refused.

Every rule carries a comment ``dlhub:<bridge>:<network>`` so that it can be found: a
network's rules are replaced when they differ from the wanted ones, and rules whose bridge
interface no longer exists (a removed network) are deleted. The adapter that lists and
changes the rules is :mod:`hub_config.host_firewall`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

TAG = "dlhub"
LINK_LOCAL = "169.254.0.0/16"
CHAINS = ("INPUT", "DOCKER-USER")
REPLIES = ("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED")


@dataclass(frozen=True)
class Rule:
    """One rule: its chain and its match/target arguments (as ``iptables -S`` prints them)."""

    chain: str
    args: tuple[str, ...]

    @property
    def comment(self) -> str | None:
        """The rule's comment, or None."""
        args = list(self.args)
        if "--comment" in args:
            i = args.index("--comment")
            if i + 1 < len(args):
                return args[i + 1]
        return None


def tag(bridge: str, network: str) -> str:
    """The comment that marks the rules of ``network`` on interface ``bridge``."""
    return f"{TAG}:{bridge}:{network}"


def tagged_bridge(rule: Rule) -> str | None:
    """The bridge interface named in a dlhub rule's comment; None for others' rules."""
    parts = (rule.comment or "").split(":")
    if len(parts) == 3 and parts[0] == TAG and parts[1]:
        return parts[1]
    return None


def wanted_rules(bridge: str, network: str, gateway: str, ports: list[int]) -> list[Rule]:
    """The rules for ``network`` (interface ``bridge``), in the order they must come first
    in their chains: containers reach ``ports`` (TCP) on ``gateway`` and replies, nothing
    else on the host, nothing link-local. The arguments are in the order ``iptables -S``
    prints them, so that the rules read back compare equal."""
    note = ("-m", "comment", "--comment", tag(bridge, network))
    into = ("-i", bridge)
    tcp_reset = ("-j", "REJECT", "--reject-with", "tcp-reset")
    unreachable = ("-j", "REJECT", "--reject-with", "icmp-port-unreachable")
    rules = [Rule("INPUT", (*into, *REPLIES, *note, "-j", "ACCEPT"))]
    for port in sorted(set(ports)):
        to_port = ("-d", f"{gateway}/32", *into, "-p", "tcp", "-m", "tcp", "--dport", str(port))
        rules.append(Rule("INPUT", (*to_port, *note, "-j", "ACCEPT")))
    link_local = ("-d", LINK_LOCAL, *into)
    return [
        *rules,
        Rule("INPUT", (*into, "-p", "tcp", *note, *tcp_reset)),
        Rule("INPUT", (*into, *note, *unreachable)),
        Rule("DOCKER-USER", (*into, *REPLIES, *note, "-j", "RETURN")),
        Rule("DOCKER-USER", (*link_local, "-p", "tcp", *note, *tcp_reset)),
        Rule("DOCKER-USER", (*link_local, *note, *unreachable)),
    ]


def parse_listing(listing: str) -> list[Rule]:
    """The rules of an ``iptables -S <chain>`` listing (``-A`` lines), in order."""
    rules = []
    for line in listing.splitlines():
        words = shlex.split(line)
        if len(words) >= 2 and words[0] == "-A":
            rules.append(Rule(words[1], tuple(words[2:])))
    return rules


@dataclass(frozen=True)
class Plan:
    """What to change: rules to delete (``iptables -D``), then rules to insert at the
    top of their chain (``iptables -I <chain> <n>``, ``position`` counted from 1)."""

    delete: list[Rule]
    insert: list[tuple[int, Rule]]


def plan(current: list[Rule], wanted: list[Rule], bridge: str, bridges: set[str]) -> Plan:
    """How to go from the ``current`` rules of the chains to ``wanted`` for ``bridge``.

    Rules of removed networks (a dlhub tag naming an interface not in ``bridges``) go.
    ``bridge``'s own rules are kept when they already are, in order, the first rules of
    their chains (other networks' rules aside) and equal to ``wanted``; otherwise they
    are deleted and ``wanted`` is inserted. Nobody else's rules are touched.
    """
    stale = [
        r
        for r in current
        if tagged_bridge(r) not in (None, bridge) and tagged_bridge(r) not in bridges
    ]
    ours = [r for r in current if tagged_bridge(r) == bridge]
    # other networks' rules (about other interfaces) may come before ours
    mine_and_others = [r for r in current if tagged_bridge(r) in (None, bridge)]
    in_place = all(
        [r for r in mine_and_others if r.chain == chain][: len(want)] == want
        for chain in CHAINS
        for want in [[r for r in wanted if r.chain == chain]]
    )
    if in_place and ours == wanted:
        return Plan(delete=stale, insert=[])
    inserts = []
    for chain in CHAINS:
        for i, rule in enumerate(r for r in wanted if r.chain == chain):
            inserts.append((i + 1, rule))
    return Plan(delete=stale + ours, insert=inserts)


def iptables_args(rule: Rule, action: str, position: int | None = None) -> list[str]:
    """The ``iptables`` arguments that apply ``action`` (``-I``, ``-D``) to ``rule``."""
    head = [action, rule.chain] + ([str(position)] if position is not None else [])
    return ["-w", *head, *rule.args]
