"""End to end: the real `visualdl` server shows a run's curves exactly as they are in its record file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import TINY, cli_env, free_port, last_json, record_file, run_cli, scalars

pytestmark = pytest.mark.server

STARTUP_TIMEOUT = 60  # seconds for the server to answer its first request


def _get(url: str) -> Any:
    """GET a VisualDL API url and return its `data`, failing on a non-zero status."""
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read().decode())
    assert body.get("status") == 0, body
    return body["data"]


def _wait_for_runs(base: str, server: subprocess.Popen[bytes]) -> list[str]:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if server.poll() is not None:
            raise AssertionError(f"visualdl exited with status {server.returncode} before answering")
        try:
            return _get(f"{base}/app/api/runs")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise AssertionError(f"visualdl did not answer within {STARTUP_TIMEOUT} s") from None
            time.sleep(0.5)


def test_visualdl_server_shows_the_logged_scalars(tmp_path: Path) -> None:
    """Start `visualdl --logdir logs` where training ran; its API must list the run and return for
    'episode reward', 'critic loss' and 'actor loss' exactly the (step, value) points LogReader reads
    from the record file: the tutorial's way of watching training works on the package's logs."""
    result = run_cli("train", *TINY, "--run-name", "myrun", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    record = record_file(tmp_path / "logs" / "myrun")

    visualdl = Path(sys.executable).parent / "visualdl"
    assert visualdl.is_file(), f"{visualdl} missing: the visualdl package installs this script"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(visualdl), "--logdir", "logs", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=tmp_path, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        runs = _wait_for_runs(base, server)
        matching = [r for r in runs if r == "myrun" or r.endswith("/myrun")]
        assert len(matching) == 1, runs
        run = matching[0]
        losses = summary["learn_steps"] // 10  # the mean of every 10 learn steps
        for tag, expected_points in (("episode reward", summary["episodes"]), ("critic loss", losses),
                                     ("actor loss", losses)):
            query = urllib.parse.urlencode({"run": run, "tag": tag})
            served = _get(f"{base}/app/api/scalar/list?{query}")
            # each point is [wall time in ms, step, value]
            points = [(int(step), float(value)) for _, step, value in served]
            assert len(points) == expected_points, tag
            assert points == scalars(record, tag), tag
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

