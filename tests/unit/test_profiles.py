"""Choosing a profile and rendering the spawn form (pure)."""

import pytest

from hub_config import profiles
from hub_config.config import validate

PROFILES = validate(
    {
        "profiles": [
            {"name": "small", "display_name": "Small", "mem_limit": "1G", "cpu_limit": 1},
            {
                "name": "big",
                "display_name": "Big <b>box</b>",
                "description": 'for "real" work & more',
                "mem_limit": "8G",
                "default": True,
            },
        ]
    }
)["profiles"]


def test_default_profile_is_the_marked_one():
    assert profiles.choose(PROFILES, {})["name"] == "big"
    assert profiles.choose(PROFILES, None)["name"] == "big"


def test_first_profile_when_none_marked():
    plain = [dict(p, default=False) for p in PROFILES]
    assert profiles.choose(plain, {})["name"] == "small"


def test_choose_by_name_from_api_or_form():
    assert profiles.choose(PROFILES, {"profile": "small"})["name"] == "small"
    assert profiles.choose(PROFILES, {"profile": ["small"]})["name"] == "small"


@pytest.mark.parametrize("bad", ["nope", "", ["a", "b"], 3, None, {"x": 1}])
def test_unknown_profile_names_the_choices(bad):
    with pytest.raises(profiles.ProfileError) as info:
        profiles.choose(PROFILES, {"profile": bad})
    assert str(info.value) == f"unknown profile {bad!r}; choose one of: small, big"


def test_options_from_form_reads_only_profile():
    assert profiles.options_from_form({"profile": ["small"], "image": ["evil"]}) == {
        "profile": "small"
    }
    assert profiles.options_from_form({}) == {}


def test_no_form_for_a_single_profile():
    assert profiles.render_form(PROFILES[:1]) == ""


def test_form_lists_profiles_escaped_with_default_checked():
    html = profiles.render_form(PROFILES)
    assert 'value="small"' in html and 'value="big"' in html
    assert "Big &lt;b&gt;box&lt;/b&gt;" in html
    assert "for &#34;real&#34; work &amp; more" in html
    assert 'id="profile-big"\n           value="big" checked' in html
    assert html.count(" checked") == 1


def test_form_preselects_previous_choice():
    html = profiles.render_form(PROFILES, "small")
    assert 'value="small" checked' in html
    assert html.count(" checked") == 1
    # a stale previous choice falls back to the default
    assert 'value="big" checked' in profiles.render_form(PROFILES, "gone")


def test_other_options_are_refused():
    # an image (or anything else) cannot be chosen directly, only through a profile
    with pytest.raises(profiles.ProfileError) as info:
        profiles.choose(PROFILES, {"profile": "small", "image": "evil/image"})
    assert str(info.value) == "unknown option 'image'; a server is chosen by its 'profile' only"


GPU_PROFILES = validate(
    {
        "gpus": {"enabled": True, "devices": [{"uuid": "GPU-0", "model": "A100"}]},
        "profiles": [
            {"name": "cpu", "default": True},
            {"name": "one", "gpus": 1},
            {"name": "four", "gpus": 4},
        ],
    }
)["profiles"]


def test_gpu_profiles_show_capacity_and_quota():
    capacity = {"models": {"A100": {"total": 1, "free": 0}}, "quota": 1, "used": 0}
    html = profiles.render_form(GPU_PROFILES, capacity=capacity)
    assert "0 of 1 GPUs free; you hold 0 of your quota of 1; you will wait in the queue" in html
    # more GPUs than the hub has: disabled, with the reason
    assert 'value="four" disabled>' in html
    assert "Not available: needs 4 GPUs, this hub has 1" in html
    assert html.count(" disabled") == 1


def test_beyond_quota_is_said():
    capacity = {"models": {"A100": {"total": 1, "free": 1}}, "quota": 0, "used": 0}
    notes = profiles.gpu_notes(GPU_PROFILES, capacity)
    assert "beyond your quota you get idle GPUs only" in notes["one"]["line"]
    assert notes["one"]["disabled"] == ""


def test_no_capacity_known_means_no_notes():
    assert profiles.gpu_notes(GPU_PROFILES, None) == {}
    assert "disabled" not in profiles.render_form(GPU_PROFILES)
