"""A user server's hub token out of its pod spec, in a Secret of its own (pure builders).

JupyterHub hands a server its API token in the environment (``JUPYTERHUB_API_TOKEN`` and the
older ``JPY_API_TOKEN``). KubeSpawner writes the environment into the pod spec, where
anyone who may read pods in the namespace reads every user's token. The kubernetes backend
writes those variables into a Secret named after the pod instead, and the pod's container
takes them from it with ``valueFrom.secretKeyRef``; the Secret is made before the pod and
deleted when the server stops. The hub's Role may create and delete Secrets but not read
them; no other dlhub account may touch them (the kubelet reads the Secret for the pod).

:func:`split_env` and :func:`secret_manifest` are what
:class:`hub_config.kubernetes.KubernetesSpawner` uses; a unit test compares them with dicts.
"""

from __future__ import annotations

#: The variables of :meth:`jupyterhub.spawner.Spawner.get_env` that hold the server's token.
SECRET_ENV = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")

#: The label of these Secrets (``kubectl get secret -l dlhub.io/server-token``).
SECRET_LABEL = "dlhub.io/server-token"


def split_env(env: dict, secret_name: str) -> tuple[dict, dict[str, str]]:
    """The environment with each token variable taken from the Secret ``secret_name``, and
    the Secret's data (``{variable: value}``). Variables that are unset or empty stay out
    of both."""
    out, data = {}, {}
    for key, value in env.items():
        if key in SECRET_ENV and isinstance(value, str):
            if value:
                data[key] = value
                out[key] = {
                    "name": key,
                    "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}},
                }
            continue
        out[key] = value
    return out, data


def secret_manifest(name: str, data: dict[str, str], labels: dict[str, str]) -> dict:
    """The Secret that holds a server's token variables (``stringData``: the API server
    stores them base64-encoded under ``data``)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {**labels, SECRET_LABEL: "true"}},
        "type": "Opaque",
        "stringData": dict(data),
    }
