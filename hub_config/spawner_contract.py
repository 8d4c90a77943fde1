"""What dlhub's spawner mixins need from each other, declared once with defaults.

:class:`hub_config.spawners.ProfilesMixin` sets the chosen ``profile`` and shows GPU
capacity on the spawn form; :class:`hub_config.gpu.GpuMixin` reads the profile's
``gpus`` and answers ``gpu_capacity()`` from the scheduler. Both derive from
:class:`SpawnerContract`, so each finds what it needs here even without the other
(no ``hasattr``), and Python's method order puts this base after both of them: whichever
mixin overrides a method here wins, in any order of the bases.
"""

from __future__ import annotations

from traitlets import Dict
from traitlets.config import Configurable


class SpawnerContract(Configurable):
    """The attributes dlhub's spawner mixins share (a base of each of them)."""

    profile = Dict(
        help="""The profile of the current or last start (one entry of the platform
        config's ``profiles``, as validated).

        Set by ProfilesMixin when the user picks it on the spawn form, kept in the
        spawner state; GpuMixin reads its ``gpus``, ``gpu_idle_timeout`` and
        ``max_lifetime``. Empty before the first start.
        """,
    )

    async def gpu_capacity(self) -> dict | None:
        """Free/total GPUs and this user's quota and use; None when unknown.

        None here (no GPU scheduling); GpuMixin answers from the scheduler.
        """
        return None
