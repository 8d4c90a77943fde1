"""The chart names group claims exactly as the hub does (`dlhub.groupClaim` and
`dlhub.safeSlug` against `hub_config.k8s_objects.group_claim` and `hub_config.naming.dns_label`):
groups whose names once shared a claim get one each, and no release takes the names of
users' pods and homes."""

from __future__ import annotations

import json
import random
import shutil
import unicodedata

import pytest
import yaml
from chartkit import CHART, DNS_LABEL, RELEASE, helm_template, kinds

from hub_config.k8s_objects import chart_fullname, group_claim
from hub_config.naming import dns_label

pytestmark = pytest.mark.k8s

FULL = chart_fullname(RELEASE)

#: Group names that are valid in the platform config and tricky for a slug.
GROUPS = [
    "ml-team",
    "ML_Team",
    "ml.team",
    "ml_team",
    "ML-TEAM",
    "a",
    "A",
    "1",
    "0day",
    "x--y",
    "x-",
    "team.",
    "g" * 63,
    "g" * 62 + "h",
    "G" * 63,
    "9" * 63,
]


def render_values(helm, tmp_path, values: dict, chart=CHART):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values, allow_unicode=False))
    return helm_template(helm, values=(str(path),), chart=chart)


def group_values(groups) -> dict:
    return {
        "sharedStorage": {
            "enabled": True,
            "volumes": [{"name": g, "size": "1Gi"} for g in groups],
        },
        "platform": {"volumes": {"groups": [{"group": g} for g in groups]}},
    }


def test_the_charts_group_claims_are_the_hubs_and_all_distinct(helm, tmp_path):
    result = render_values(helm, tmp_path, group_values(GROUPS))
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    claims = {
        d["metadata"]["name"]: d["metadata"]["labels"]["dlhub.io/volume"]
        for d in kinds(docs, "PersistentVolumeClaim")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "shared-storage"
    }
    expected = {group_claim(FULL, g) for g in GROUPS}
    assert len(expected) == len(GROUPS)
    assert set(claims) == expected | {f"{FULL}-datasets", f"{FULL}-shared"}
    for name, volume in claims.items():
        assert DNS_LABEL.match(name), name
        assert name == f"{FULL}-{volume}" and len(volume) <= 63
    # the hub mounts, for each group, the claim the chart made
    (platform,) = [d for d in kinds(docs, "Secret") if d["metadata"]["name"] == f"{FULL}-platform"]
    assert platform  # the platform config rendered without the "needs the claim" failure
    assert group_claim(FULL, "ml-team") == f"{FULL}-group-ml-team"
    assert group_claim(FULL, "ML_Team") != group_claim(FULL, "ml.team")


def test_a_group_volume_without_its_claim_names_the_claim(helm, tmp_path):
    values = group_values(["ML_Team"])
    values["sharedStorage"]["volumes"] = [{"name": "ml-team", "size": "1Gi"}]
    result = render_values(helm, tmp_path, values)
    assert result.returncode != 0
    assert f"the volume of group ML_Team needs the claim {group_claim(FULL, 'ML_Team')}" in (
        result.stderr
    )


def test_a_group_listed_twice_in_shared_storage_is_refused(helm, tmp_path):
    values = group_values(["ml-team"])
    values["sharedStorage"]["volumes"] *= 2
    result = render_values(helm, tmp_path, values)
    assert result.returncode != 0
    assert "the group ml-team is listed twice" in result.stderr


@pytest.mark.parametrize("override", ["home-lab", "jupyter-lab"])
def test_a_release_named_like_users_pods_and_homes_is_refused(helm, tmp_path, override):
    result = render_values(helm, tmp_path, {"fullnameOverride": override})
    assert result.returncode != 0
    assert "starts like the names of users' pods and homes" in result.stderr


# --- the slug itself, for any name -----------------------------------------------------------


def cased_characters() -> str:
    """Every character Unicode gives a case (where lowercasing could differ between
    Python and Go), the surrogates and unassigned code points left out."""
    out = []
    for code in range(0x80, 0x110000):
        char = chr(code)
        if unicodedata.category(char) in ("Cs", "Cn", "Co"):
            continue
        if char.lower() != char or char.upper() != char:
            out.append(char)
    return "".join(out)


def slug_names() -> list[str]:
    rng = random.Random(10)
    alphabet = "aZ09-_.~ /\t\u00e9\u0130\u212a\u03a3\u00df\U0001f600\u4e2d\u0307"
    names = ["", "-", "--", "---", "x---y", "a" * 200, "\u0130" * 3, "\u212a", "Stra\u00dfe"]
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80))) for _ in range(150)]
    cased = cased_characters()
    # each cased character between letters, so that its lowercase shows in the slug
    names += ["a" + "a".join(cased[i : i + 20]) + "a" for i in range(0, len(cased), 20)]
    return names


@pytest.fixture
def slug_chart(tmp_path):
    """A chart of the real helpers and one template that prints `dlhub.safeSlug` of each
    name in .Values.names with each length in .Values.lengths."""
    chart = tmp_path / "slugs"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: slugs\nversion: 0.1.0\n")
    shutil.copy(CHART / "templates" / "_helpers.tpl", chart / "templates" / "_helpers.tpl")
    (chart / "templates" / "slugs.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: slugs\ndata:\n"
        "  slugs: {{ $out := list }}{{ range $n := .Values.names }}"
        "{{ range $l := $.Values.lengths }}"
        '{{ $out = append $out (include "dlhub.safeSlug" (list $n $l)) }}{{ end }}{{ end }}'
        "{{ toJson $out | quote }}\n"
    )
    return chart


def test_the_charts_slug_is_kubespawners_for_any_name(helm, tmp_path, slug_chart):
    names, lengths = slug_names(), [12, 16, 63, 1000]
    path = tmp_path / "names.yaml"
    # YAML's escapes carry every character (and no surrogates) through to Go
    path.write_text(yaml.safe_dump({"names": names, "lengths": lengths}, allow_unicode=False))
    result = helm_template(helm, values=(str(path),), chart=slug_chart)
    assert result.returncode == 0, result.stderr[-2000:]
    (doc,) = [d for d in yaml.safe_load_all(result.stdout) if d]
    rendered = json.loads(doc["data"]["slugs"])
    expected = [dns_label(n, n_len) for n in names for n_len in lengths]
    mismatches = [
        (n, length, got, want)
        for (n, length), got, want in zip(
            [(n, m) for n in names for m in lengths], rendered, expected, strict=True
        )
        if got != want
    ]
    assert not mismatches, mismatches[:5]
    for name in names:
        assert len(dns_label(name, 63)) <= 63 and DNS_LABEL.match(dns_label(name, 63))
