"""hub.poll_interval: the operator's value, or the backend's when it is null."""

import pytest

from hub_config.config import load_platform_config
from hub_config.mapping import POLL_INTERVAL, poll_interval


@pytest.mark.parametrize("backend", ["local", "docker", "kubernetes"])
def test_null_takes_the_backends_interval(tmp_path, backend):
    path = tmp_path / "dlhub.yaml"
    path.write_text(f"backend: {backend}\n")
    cfg = load_platform_config(str(path))
    assert cfg["hub"]["poll_interval"] is None
    assert poll_interval(cfg) == POLL_INTERVAL[backend]


def test_servers_out_of_the_hubs_sight_are_checked_within_five_seconds():
    assert POLL_INTERVAL["docker"] <= 5 and POLL_INTERVAL["kubernetes"] <= 5


def test_an_operators_value_wins(tmp_path):
    path = tmp_path / "dlhub.yaml"
    path.write_text("backend: docker\nhub: {poll_interval: 42}\n")
    assert poll_interval(load_platform_config(str(path))) == 42
