"""dlhub's GPU scheduler: leases, per-group quotas, a queue with ETAs, idle reclaim.

The policy (:mod:`gpu_scheduler.policy`) is pure: no I/O, the time passed in by the
caller, so that it is tested exhaustively and replayed in simulations
(``bench/scheduler``).
"""

__version__ = "0.1.0"
