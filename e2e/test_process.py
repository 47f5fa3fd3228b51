"""The `sluice` process itself: SIGHUP reloads, SIGTERM drains in-flight
streams and exits 0, `sluice check` reports every issue with its place."""

import signal
import subprocess
import threading

import openai
import pytest

from conftest import KEY, binary, free_port, wait_http


def start(tmp_path, models: str):
    port = free_port()
    path = tmp_path / "sluice.yaml"
    path.write_text(
        f"""
listen: 127.0.0.1:{port}
server: {{ drain_timeout: 20s }}
providers:
  slow: {{ kind: mock, mock: {{ tokens_per_second: 25 }} }}
models:
{models}
keys:
  - {{ name: e2e, key: {KEY} }}
"""
    )
    proc = subprocess.Popen([binary("SLUICE_BIN"), "serve", "--config", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc, "sluice")
    return proc, path, openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


ONE = "  a: { deployments: [ { provider: slow, model: a } ] }"
TWO = ONE + "\n  b: { deployments: [ { provider: slow, model: b } ] }"


def test_sigterm_lets_the_stream_finish(tmp_path):
    proc, _, client = start(tmp_path, ONE)
    try:
        stream = client.chat.completions.create(model="a", stream=True, messages=[{"role": "user", "content": "one two three four five six"}])
        first = next(iter(stream))
        proc.send_signal(signal.SIGTERM)
        rest = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        text = (first.choices[0].delta.content or "") + rest
        assert text.endswith("one two three four five six"), text
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()


def test_sighup_reloads_the_config(tmp_path):
    proc, path, client = start(tmp_path, ONE)
    try:
        assert {m.id for m in client.models.list()} == {"a"}
        path.write_text(path.read_text().replace(ONE, TWO))
        proc.send_signal(signal.SIGHUP)
        # The watcher may reload first; either way b appears, bounded wait.
        import time

        for _ in range(100):
            if {m.id for m in client.models.list()} == {"a", "b"}:
                break
            time.sleep(0.05)
        assert {m.id for m in client.models.list()} == {"a", "b"}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_check_reports_every_issue_with_its_place(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("listen: 127.0.0.1:4000\nproviders:\n  p: { kind: mock, base_ur: x }\nmodels:\n  m: { deployments: [ { provider: nope, model: x } ] }\n")
    out = subprocess.run([binary("SLUICE_BIN"), "check", "--config", str(path)], capture_output=True, text=True)
    assert out.returncode == 1
    assert f"{path}:3:" in out.stderr and "providers.p.base_ur" in out.stderr
    assert f"{path}:5:" in out.stderr and "unknown provider `nope`" in out.stderr
    ok = subprocess.run([binary("SLUICE_BIN"), "check", "--config", "examples/quickstart.yaml"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_schema_is_json_schema():
    import json

    out = subprocess.run([binary("SLUICE_BIN"), "schema"], capture_output=True, text=True, check=True)
    schema = json.loads(out.stdout)
    assert "providers" in schema["properties"]
