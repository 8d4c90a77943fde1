"""A Kubernetes server's hub token lives in a Secret of its own, never in the pod spec
(hub_config.token_secret, and KubernetesSpawner's manifest; no cluster needed)."""

import asyncio
import json
from types import SimpleNamespace

from hub_config.kubernetes import KubernetesSpawner
from hub_config.token_secret import SECRET_LABEL, secret_manifest, split_env

TOKEN = "0123456789abcdef-the-servers-token"


def ref(name, key):
    return {"name": key, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}


def test_split_env_moves_the_tokens_into_the_secrets_data():
    env = {"JUPYTERHUB_API_TOKEN": TOKEN, "JPY_API_TOKEN": TOKEN, "JUPYTERHUB_USER": "alice"}
    out, data = split_env(env, "jupyter-alice")
    assert out == {
        "JUPYTERHUB_API_TOKEN": ref("jupyter-alice", "JUPYTERHUB_API_TOKEN"),
        "JPY_API_TOKEN": ref("jupyter-alice", "JPY_API_TOKEN"),
        "JUPYTERHUB_USER": "alice",
    }
    assert data == {"JUPYTERHUB_API_TOKEN": TOKEN, "JPY_API_TOKEN": TOKEN}


def test_split_env_leaves_out_an_empty_token():
    out, data = split_env({"JUPYTERHUB_API_TOKEN": "", "A": "b"}, "s")
    assert (out, data) == ({"A": "b"}, {})


def test_secret_manifest():
    labels = {"app.kubernetes.io/instance": "dlhub"}
    assert secret_manifest("jupyter-alice", {"JUPYTERHUB_API_TOKEN": TOKEN}, labels) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "jupyter-alice",
            "labels": {"app.kubernetes.io/instance": "dlhub", SECRET_LABEL: "true"},
        },
        "type": "Opaque",
        "stringData": {"JUPYTERHUB_API_TOKEN": TOKEN},
    }


def test_the_pod_manifest_refers_to_the_secret_and_holds_no_token(kubeconfig):
    from kubernetes_asyncio.client import ApiClient

    async def manifest():
        user = SimpleNamespace(name="alice", id=1, url="/user/alice/", groups=[])
        spawner = KubernetesSpawner(_mock=True, user=user, namespace="dlhub")
        spawner.api_token = TOKEN
        pod = await spawner.get_pod_manifest()
        return spawner, ApiClient().sanitize_for_serialization(pod)

    spawner, pod = asyncio.run(manifest())
    assert TOKEN not in json.dumps(pod)
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_TOKEN"] == ref(spawner.secret_name, "JUPYTERHUB_API_TOKEN")
    assert spawner.secret_name == pod["metadata"]["name"] == "jupyter-alice"
