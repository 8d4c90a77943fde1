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
