"""Which shared volumes a user gets, where, and read-only or not (pure)."""

from hub_config import profiles, volumes
from hub_config.config import validate


def cfg_volumes(**extra):
    return validate({"backend": "docker", "volumes": extra})["volumes"]


V = cfg_volumes(
    groups=[
        {"group": "physics"},
        {"group": "Course.2026", "others": "read", "mount": "/srv/course"},
    ]
)


def names(mounts):
    return {(m.name, m.target, m.read_only) for m in mounts}


def test_a_member_writes_their_group_volume_others_read_or_do_not_see_it():
    assert names(volumes.for_user(V, ["physics"])) == {
        ("datasets", "datasets", True),
        ("shared", "shared", False),
        ("group-physics", "groups/physics", False),
        ("group--43ourse-2e2026", "/srv/course", True),
    }
    outsider = names(volumes.for_user(V, []))
    assert ("group-physics", "groups/physics", False) not in outsider
    assert not any(n == "group-physics" for n, _, _ in outsider)
    assert ("group--43ourse-2e2026", "/srv/course", True) in outsider
    assert ("group--43ourse-2e2026", "/srv/course", False) in names(
        volumes.for_user(V, ["Course.2026"])
    )


def test_disabled_volumes_are_not_mounted():
    v = cfg_volumes(datasets={"enabled": False}, shared={"enabled": False})
    assert volumes.for_user(v, ["any"]) == []


def test_docker_binds_read_only_and_sources():
    v = cfg_volumes(datasets={"source": "/data/imagenet"}, groups=[{"group": "physics"}])
    binds = volumes.docker_binds(volumes.for_user(v, ["physics"]), "dlhub", "/home/jovyan")
    assert binds == {
        "/data/imagenet": {"bind": "/home/jovyan/datasets", "mode": "ro"},
        "dlhub-shared": {"bind": "/home/jovyan/shared", "mode": "rw"},
        "dlhub-group-physics": {"bind": "/home/jovyan/groups/physics", "mode": "rw"},
    }


def test_profiles_by_group():
    ps = validate(
        {
            "profiles": [
                {"name": "cpu"},
                {"name": "staff-gpu", "groups": ["staff"]},
                {"name": "course", "groups": ["course", "staff"]},
            ]
        }
    )["profiles"]
    assert [p["name"] for p in profiles.visible(ps, [])] == ["cpu"]
    assert [p["name"] for p in profiles.visible(ps, ["course"])] == ["cpu", "course"]
    assert [p["name"] for p in profiles.visible(ps, ["staff"])] == ["cpu", "staff-gpu", "course"]
    hidden = profiles.visible(ps, ["course"])
    try:
        profiles.choose(hidden, {"profile": "staff-gpu"})
    except profiles.ProfileError as e:
        assert str(e) == "unknown profile 'staff-gpu'; choose one of: cpu, course"
    else:
        raise AssertionError("a hidden profile was chosen")
    try:
        profiles.choose([], {})
    except profiles.ProfileError as e:
        assert "no profile is available to you" in str(e)
    else:
        raise AssertionError("chose from nothing")
