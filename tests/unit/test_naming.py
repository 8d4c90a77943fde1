"""Safe, collision-free names from usernames."""

import re

from hypothesis import given
from hypothesis import strategies as st

from hub_config.naming import safe_name, safe_slug


def test_examples():
    assert safe_name("alice") == "alice"
    assert safe_name("a.b") == "a-2eb"
    assert safe_name("a-b") == "a-2db"
    assert safe_name("Alice") == "-41lice"
    assert safe_name("a:b") == "a-3ab"
    assert safe_name("../etc") == "-2e-2e-2fetc"


@given(st.text(min_size=1, max_size=80))
def test_only_safe_characters(name):
    assert re.fullmatch(r"[a-z0-9-]+", safe_name(name))
    assert "/" not in safe_name(name) and safe_name(name) not in (".", "..")


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_distinct_names_stay_distinct(a, b):
    if a != b:
        assert safe_name(a) != safe_name(b)


def test_slug_short_names_unchanged():
    assert safe_slug("alice") == "alice"
    assert safe_slug("a.b") == "a-2eb"


def test_slug_long_names_are_bounded_and_distinct():
    a, b = "x" * 70, "x" * 69 + "y"
    assert len(safe_slug(a)) == 63 and len(safe_slug(b)) == 63
    assert safe_slug(a) != safe_slug(b)
    assert "--" in safe_slug(a)


@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80))
def test_slugs_distinct_and_valid(a, b):
    assert re.fullmatch(r"[a-z0-9-]{1,63}", safe_slug(a))
    if a != b:
        assert safe_slug(a) != safe_slug(b)
