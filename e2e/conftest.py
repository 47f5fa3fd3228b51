"""End-to-end fixtures: a real `sluice` process in front of (a) its built-in
mock provider and (b) the testkit mock upstream speaking OpenAI, Anthropic and
Gemini wire formats, driven by the official `openai` and `anthropic` SDKs.

The binaries come from SLUICE_BIN and MOCK_UPSTREAM_BIN (set by
scripts/test.sh); every port is a free local one.
"""

import os
import socket
import subprocess
import time
import urllib.request

import pytest

KEY = "sk-sluice-e2e-0001"
ADMIN_KEY = "sk-sluice-e2e-admin"

# Model names the tests use, and which upstream wire serves each.
CHAT_MODELS = ["mock-1", "via-openai", "via-anthropic", "via-gemini"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, what: str) -> None:
    deadline = time.time() + 15
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer at {url}")


def binary(env: str) -> str:
    path = os.environ.get(env)
    if not path or not os.path.exists(path):
        raise RuntimeError(f"{env} must point to a built binary (run scripts/test.sh)")
    return path


@pytest.fixture(scope="session")
def upstream():
    port = free_port()
    proc = subprocess.Popen([binary("MOCK_UPSTREAM_BIN"), "--listen", f"127.0.0.1:{port}"])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/v1/models", proc, "mock upstream")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def gateway(upstream, tmp_path_factory):
    port, admin = free_port(), free_port()
    config = f"""
listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin}
admin_key: {ADMIN_KEY}
log: {{ format: json }}
providers:
  mock: {{ kind: mock }}
  up-openai: {{ kind: openai, base_url: "{upstream}/v1", api_key: sk-up-openai }}
  up-anthropic: {{ kind: anthropic, base_url: "{upstream}", api_key: sk-up-anthropic }}
  up-gemini: {{ kind: gemini, base_url: "{upstream}", api_key: sk-up-gemini }}
models:
  mock-1: {{ deployments: [ {{ provider: mock, model: mock-1 }} ] }}
  cached-mock: {{ cache: {{ ttl: 1h }}, deployments: [ {{ provider: mock, model: mock-1 }} ] }}
  mock-embed: {{ deployments: [ {{ provider: mock, model: mock-embed }} ] }}
  via-openai: {{ deployments: [ {{ provider: up-openai, model: gpt-4o-mini }} ] }}
  via-anthropic: {{ deployments: [ {{ provider: up-anthropic, model: claude-sonnet-4-5 }} ] }}
  via-gemini: {{ deployments: [ {{ provider: up-gemini, model: gemini-2.5-flash }} ] }}
  embed-openai: {{ deployments: [ {{ provider: up-openai, model: text-embedding-3-small }} ] }}
keys:
  - {{ name: e2e, key: {KEY} }}
"""
    path = tmp_path_factory.mktemp("gw") / "sluice.yaml"
    path.write_text(config)
    log = open(path.with_suffix(".log"), "w")
    proc = subprocess.Popen([binary("SLUICE_BIN"), "serve", "--config", str(path)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", proc, "sluice")
        yield {"url": url, "admin": f"http://127.0.0.1:{admin}", "log": path.with_suffix(".log")}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def openai_client(gateway):
    import openai

    return openai.OpenAI(base_url=f"{gateway['url']}/v1", api_key=KEY, max_retries=0)


@pytest.fixture
def anthropic_client(gateway):
    import anthropic

    return anthropic.Anthropic(base_url=gateway["url"], api_key=KEY, max_retries=0)
