"""The server token's hand-over into a user container (hub_config.docker_token)."""

import io
import subprocess
import tarfile

from hub_config import docker_token


def test_archive_holds_the_token_private_to_the_images_user():
    with tarfile.open(fileobj=io.BytesIO(docker_token.archive("s3cret", "1000:100"))) as tar:
        (info,) = tar.getmembers()
        assert "/tmp/" + info.name == docker_token.TOKEN_FILE
        assert (info.mode, info.uid, info.gid) == (0o600, 1000, 100)
        assert tar.extractfile(info).read() == b"s3cret"


def test_command_exports_the_token_deletes_the_file_and_runs_the_command(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret")
    cmd = docker_token.command(["sh", "-c", 'echo "$JUPYTERHUB_API_TOKEN" "$1"', "-", "arg"])
    cmd[2] = cmd[2].replace(docker_token.TOKEN_FILE, str(token_file))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["s3cret", "arg"]
    assert not token_file.exists()


def test_command_fails_without_the_file(tmp_path):
    cmd = docker_token.command(["true"])
    cmd[2] = cmd[2].replace(docker_token.TOKEN_FILE, str(tmp_path / "missing"))
    assert subprocess.run(cmd, capture_output=True).returncode != 0
