"""The process the hub starts for each of its managed services: it runs the service,
starts it again when it dies, and never outlives the hub.

``python -m hub_config.supervisor --name NAME --pid-file FILE -- COMMAND...``

- It asks the kernel for SIGTERM when its parent (the hub) dies, whatever the hub's end,
  ``kill -9`` included (``prctl(PR_SET_PDEATHSIG)``), and gives its service the same
  tie to itself: no service of a dead hub keeps its port or its token.
- It writes its pid to ``FILE`` (mode 0600; the hub's data dir), where the next hub
  finds it (:func:`hub_config.managed_services.end_orphans`).
- The service dying on its own is started again: at once the first time, then after
  1, 2, 4 ... up to :data:`MAX_DELAY` seconds while it keeps dying within
  :data:`STEADY` seconds of its start. JupyterHub itself does not restart a managed
  service.
- SIGINT or SIGTERM (the hub stopping it, Ctrl-C) ends the service with SIGTERM, then
  SIGKILL after :data:`GRACE` seconds, and the supervisor exits 0, without a traceback.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

#: prctl's option: the signal a process gets when its parent ends (linux/prctl.h)
PR_SET_PDEATHSIG = 1
#: seconds a stopping service has between SIGTERM and SIGKILL
GRACE = 3.0
#: a service that ran this many seconds died on its own, not at its start
STEADY = 30.0
#: the longest pause between two starts of a service that keeps dying
MAX_DELAY = 30.0


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent ends (Linux).

    False where the call is not available (the caller relies on the pid file then)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def next_delay(previous: float, ran: float) -> float:
    """Seconds to wait before the next start of a service that ran ``ran`` seconds,
    the last pause having been ``previous`` (pure)."""
    if ran >= STEADY:
        return 0.0
    return min(max(previous * 2, 1.0), MAX_DELAY)


class Supervisor:
    def __init__(self, name: str, command: list[str], pid_file: Path | None):
        self.name = name
        self.command = command
        self.pid_file = pid_file
        self.child: subprocess.Popen | None = None
        self.stopping = threading.Event()

    def say(self, message: str) -> None:
        print(f"dlhub: service {self.name}: {message}", file=sys.stderr, flush=True)

    def stop(self, signum=None, frame=None) -> None:
        """A signal handler: end the service, then the loop."""
        self.stopping.set()
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        parent = os.getppid()
        die_with_parent(signal.SIGTERM)
        if os.getppid() != parent:  # the hub ended before the tie was made
            return 0
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        if self.pid_file:
            self.pid_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.pid_file, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
        delay = 0.0
        try:
            while not self.stopping.is_set():
                started = time.monotonic()
                self.child = subprocess.Popen(
                    self.command, preexec_fn=lambda: die_with_parent(signal.SIGTERM)
                )
                if self.stopping.is_set():  # a signal came while it started
                    self.child.send_signal(signal.SIGTERM)
                code = self.child.wait()
                if self.stopping.is_set():
                    break
                ran = time.monotonic() - started
                delay = next_delay(delay, ran)
                self.say(
                    f"exited with {code} after {ran:.1f} s; starting it again in {delay:.0f} s"
                )
                self.stopping.wait(delay)
        finally:
            self.end_child()
            if self.pid_file:
                self.pid_file.unlink(missing_ok=True)
        return 0

    def end_child(self) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(GRACE)
        except subprocess.TimeoutExpired:
            self.say(f"did not stop within {GRACE:.0f} s of SIGTERM; killing it")
            child.kill()
            child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub_config.supervisor", description=__doc__)
    parser.add_argument("--name", required=True, help="the service's name (for its messages)")
    parser.add_argument("--pid-file", type=Path, help="where to write this process's pid")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the service's command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("the service's command is missing (after --)")
    return Supervisor(args.name, command, args.pid_file).run()


if __name__ == "__main__":
    sys.exit(main())
