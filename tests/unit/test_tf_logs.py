"""TensorFlow's start-up lines below TF_CPP_MIN_LOG_LEVEL are dropped (the user
environment's ``dlhub_tf_logs.py``, loaded alone), whatever else is kept."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "images/singleuser/site/dlhub_tf_logs.py"

STARTUP = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796051643.698358   16637 port.cc:153] oneDNN custom operations are on.\n"
    "I0000 00:00:1796051643.980808   16637 cpu_feature_guard.cc:227] This TensorFlow binary\n"
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild.\n"
    "W0000 00:00:1796051644.000001   16637 some.cc:1] a warning\n"
    "E0000 00:00:1796051644.000002   16637 cuda_platform.cc:52] failed call to cuInit\n"
    "a line of the user's own\n"
)


@pytest.fixture(scope="module")
def tf_logs():
    spec = importlib.util.spec_from_file_location("dlhub_tf_logs_alone", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # installs its finder: taken out again below
    yield module
    module._uninstall()


def test_level_2_keeps_errors_and_other_lines_only(tf_logs):
    kept = tf_logs.kept(STARTUP, 2)
    assert kept == (
        "E0000 00:00:1796051644.000002   16637 cuda_platform.cc:52] failed call to cuInit\n"
        "a line of the user's own\n"
    )


def test_level_1_keeps_warnings_too_and_level_0_everything(tf_logs):
    assert "W0000" in tf_logs.kept(STARTUP, 1) and "oneDNN" not in tf_logs.kept(STARTUP, 1)
    assert tf_logs.kept(STARTUP, 0) == STARTUP


def test_a_continuation_line_goes_with_its_log_line(tf_logs):
    assert "To enable the following instructions" not in tf_logs.kept(STARTUP, 1)


def test_the_level_comes_from_the_environment(tf_logs, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    assert tf_logs.min_level() == 3
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "lots")
    assert tf_logs.min_level() == 0


def test_what_follows_the_preamble_is_kept_when_it_is_not_a_log_line(tf_logs):
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to "
        "STDERR\nTraceback (most recent call last):\n"
    )
    assert tf_logs.kept(text, 2) == "Traceback (most recent call last):\n"
