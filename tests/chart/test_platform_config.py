"""The platform config the chart hands the hub: the Secret's dlhub.yaml, checked by the
hub's own loader, and the NOTES users read after `helm install`."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from chartkit import CASES, CHART, HERE, RELEASE, helm_template, one

from hubtest import part_missing

pytestmark = pytest.mark.k8s

FULL = f"{RELEASE}-dlhub"


def platform_of(docs, prefix=FULL) -> dict:
    secret = one(docs, "Secret", f"{prefix}-platform")
    return yaml.safe_load(secret["stringData"]["dlhub.yaml"])


def prefix_of(case):
    return "lab" if case == "all" else FULL


@pytest.mark.parametrize("case", CASES)
def test_platform_secret_is_the_values_tree_with_backend_kubernetes(render_case, case):
    rendered = platform_of(render_case(case), prefix_of(case))
    assert rendered["backend"] == "kubernetes"
    files, _ = CASES[case]
    given, storage = {}, False
    for file in files:
        values = yaml.safe_load((HERE / file).read_text())
        given.update(values.get("platform", {}))
        storage = storage or values.get("sharedStorage", {}).get("enabled", False)
    if not storage:
        # without the chart's shared claims, the datasets and shared volumes default to off
        off = {"enabled": False}
        given = {**given, "volumes": {"datasets": off, "shared": off, **given.get("volumes", {})}}
    assert {k: v for k, v in rendered.items() if k != "backend"} == given


def test_shared_volumes_follow_shared_storage_unless_the_platform_says(render):
    volumes = platform_of(render())["volumes"]
    assert volumes == {"datasets": {"enabled": False}, "shared": {"enabled": False}}
    # with the chart's claims they are on (the schema's default), and untouched
    with_storage = platform_of(render(set_json=('sharedStorage={"enabled":true}',)))
    assert "volumes" not in with_storage
    # a claim of the operator's own is mounted without sharedStorage
    own = '{"volumes":{"datasets":{"source":"corpus"},"shared":{"enabled":false}}}'
    volumes = platform_of(render(set_json=(f"platform={own}",)))["volumes"]
    assert volumes == {"datasets": {"source": "corpus"}, "shared": {"enabled": False}}


@pytest.mark.parametrize(
    "platform, message",
    [
        (
            '{"volumes":{"shared":{"enabled":true}}}',
            "platform.volumes.shared is enabled but its claim t-dlhub-shared is made only "
            "with sharedStorage.enabled",
        ),
        (
            '{"volumes":{"datasets":{"enabled":false},"shared":{"enabled":false},'
            '"groups":[{"group":"ML_Team"}]}}',
            "the volume of group ML_Team needs the claim t-dlhub-group-ml-team",
        ),
    ],
)
def test_volumes_without_a_claim_stop_the_install(helm, platform, message):
    result = helm_template(helm, set_json=(f"platform={platform}",))
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("case", CASES)
def test_platform_secret_matches_the_hub_schema(render_case, case):
    from jsonschema import Draft202012Validator

    from hub_config.config import schema

    rendered = platform_of(render_case(case), prefix_of(case))
    errors = [e.message for e in Draft202012Validator(schema()).iter_errors(rendered)]
    assert not errors


@pytest.mark.parametrize("case", CASES)
def test_platform_secret_passes_the_hubs_validation(render_case, case):
    from hub_config import config

    rendered = platform_of(render_case(case), prefix_of(case))
    try:
        cfg = config.validate(rendered, source="dlhub.yaml from the chart")
    except config.ConfigError as e:
        if e.key == "backend" and "kubernetes" not in config.AVAILABLE_BACKENDS:
            part_missing(f"hub_config cannot run the kubernetes backend yet: {e}")
        raise
    assert cfg["backend"] == "kubernetes"


def test_platform_secret_mounted_where_dlhub_config_points(render_case):
    docs = render_case("gpu")
    for name in (f"{FULL}-hub", f"{FULL}-gpu-scheduler"):
        spec = one(docs, "Deployment", name)["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert env["DLHUB_CONFIG"] == mounts["platform"] + "/dlhub.yaml"
        secret = volumes["platform"]["secret"]
        assert secret["secretName"] == f"{FULL}-platform"
        assert secret["items"] == [{"key": "dlhub.yaml", "path": "dlhub.yaml"}]


def test_a_changed_platform_restarts_hub(render):
    def checksum(docs):
        hub = one(docs, "Deployment", f"{FULL}-hub")
        return hub["spec"]["template"]["metadata"]["annotations"]["checksum/platform"]

    a = checksum(render(set_json=('platform={"hub":{"log_level":"DEBUG"}}',)))
    b = checksum(render(set_json=('platform={"hub":{"log_level":"INFO"}}',)))
    assert a != b


@pytest.fixture(scope="module")
def notes(helm, tmp_path_factory):
    """Render NOTES.txt (helm template leaves it out) through a copy of the chart."""
    chart = tmp_path_factory.mktemp("chart") / "dlhub"
    shutil.copytree(CHART, chart)
    text = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "_notes.tpl").write_text(
        '{{- define "test.notes" }}' + text + "{{- end }}"
    )
    (chart / "templates" / "notes.yaml").write_text(
        'notes: {{ include "test.notes" . | quote }}\n'
    )

    def notes_(*values, set_json: tuple[str, ...] = ()) -> str:
        result = helm_template(helm, values, set_json=set_json, chart=chart)
        assert result.returncode == 0, result.stderr
        docs = [d for d in yaml.safe_load_all(result.stdout) if d and "notes" in d]
        return docs[0]["notes"]

    return notes_


def test_notes_port_forward_and_first_admin(notes):
    text = notes()
    assert f"port-forward service/{FULL}-proxy-public 8000:80" in text
    assert "http://127.0.0.1:8000/hub/signup" in text
    # the first admin: the one-time link from the hub's log, not a sign-up
    assert "admin_users: admin)" in text
    assert f"logs deployment/{FULL}-hub | grep first-admin" in text
    assert "/hub/authorize" in text
    assert "gpu-scheduler" not in text


def test_notes_ingress_admins_and_gpu_page(notes):
    text = notes("values-all.yaml")
    assert "https://dlhub.example.org/dl/hub/signup" in text
    assert "ada, grace" in text
    assert "https://dlhub.example.org/dl/services/gpu-scheduler/" in text
    assert "platform.hub.db_url" in text


@pytest.mark.parametrize("kind", ["oidc", "ldap"])
def test_notes_under_a_directory_name_no_first_admin(notes, kind):
    """Under OIDC or LDAP nobody signs up and there is no built-in admin: the notes say
    how people log in and who the admins are, not the native first-admin link."""
    section = {
        "oidc": {
            "issuer": "https://sso.example.org/realms/lab",
            "client_id": "dlhub",
            "client_secret": "s3cret",
            "admin_groups": ["hub-admins"],
        },
        "ldap": {
            "server_address": "ldap.example.org",
            "bind_dn_template": ["uid={username},ou=people,dc=example,dc=org"],
            "group_search_base": "ou=groups,dc=example,dc=org",
            "admin_groups": ["hub-admins"],
        },
    }[kind]
    auth = {"type": kind, kind: section}
    text = notes(set_json=(f"platform.auth={json.dumps(auth)}",))
    assert f"platform.auth.{kind}.admin_groups." in text
    assert "first-admin" not in text and "/hub/signup" not in text
    assert "admin_users" not in text
    text = notes(set_json=(f"platform.auth={json.dumps({**auth, 'admin_users': ['ada']})}",))
    assert "and ada (platform.auth.admin_users)" in text
