"""A user container's server token, handed over in a file instead of its configuration.

DockerSpawner passes the server's token (``JUPYTERHUB_API_TOKEN``) in the container's
environment, which ``docker inspect`` shows to anyone who may read the engine's
containers (monitoring agents and log shippers included). dlhub leaves it out of the
environment: once the container is created, :func:`archive` is copied into it — one file,
mode 0600, owned by the image's user — and the container's command (:func:`command`)
reads it into the server's environment, deletes it and runs the image's command.
"""

from __future__ import annotations

import io
import tarfile
import time

#: where the token waits in the created container until the server starts
TOKEN_DIR = "/tmp"
TOKEN_FILE = f"{TOKEN_DIR}/.dlhub-api-token"
#: the environment variables JupyterHub would put the token in
TOKEN_VARS = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")

_READ = (
    f'JUPYTERHUB_API_TOKEN="$(cat {TOKEN_FILE})" && rm -f {TOKEN_FILE} && '
    'export JUPYTERHUB_API_TOKEN && exec "$@"'
)


def command(cmd: list[str]) -> list[str]:
    """``cmd``, run once the token is read from :data:`TOKEN_FILE` into the environment."""
    return ["sh", "-c", _READ, "dlhub-token", *cmd]


def archive(token: str, owner: str) -> bytes:
    """A tar archive of :data:`TOKEN_FILE`'s name holding ``token``, mode 0600, owned by
    ``owner`` (``"uid:gid"``); the engine keeps that owner when it copies it in."""
    uid, gid = (int(part) for part in owner.split(":"))
    data = token.encode()
    info = tarfile.TarInfo(TOKEN_FILE.rsplit("/", 1)[1])
    info.size, info.mode, info.uid, info.gid = len(data), 0o600, uid, gid
    info.mtime = int(time.time())
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
