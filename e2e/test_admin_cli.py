"""Tenancy end to end: the `sluice` CLI creates the first admin straight in
the store, then — against the running gateway's admin API — a tenant, an app
and a key; the official SDKs call with that key; a model that needs approval
answers 403 until its subscription is approved; a revoked key stops; the
audit log records who did what and never a secret."""

import json
import subprocess
import time

import anthropic
import openai
import pytest

from conftest import binary, free_port, wait_http


def cli(*args, env_url=None, key=None, config=None):
    cmd = [binary("SLUICE_BIN"), *args]
    if config:
        cmd += ["--config", str(config)]
    if env_url:
        cmd += ["--url", env_url, "--admin-key", key]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {out.stderr}")
    return objects(out.stdout)


def objects(text):
    """The JSON values the CLI printed, in order."""
    dec, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        value, i = dec.raw_decode(text, i)
        out.append(value)
    return out


@pytest.fixture
def gateway(tmp_path):
    port, admin = free_port(), free_port()
    path = tmp_path / "sluice.yaml"
    path.write_text(
        f"""
listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin}
store: sqlite://control.db
providers: {{ mock: {{ kind: mock }} }}
models:
  mock-1: {{ deployments: [ {{ provider: mock, model: mock-1 }} ] }}
  gated: {{ requires_approval: true, deployments: [ {{ provider: mock, model: gated }} ] }}
"""
    )
    # First set-up, before anything serves: the CLI opens the store itself.
    user, cred = cli("users", "create", "root", "--role", "admin", "--credential", config=path)
    assert user["role"] == "admin" and cred["secret"].startswith("sa-sluice-")
    proc = subprocess.Popen([binary("SLUICE_BIN"), "serve", "--config", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", proc, "sluice")
        yield {"url": url, "admin": f"http://127.0.0.1:{admin}", "cred": cred["secret"], "config": path}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def eventually(check, within=2.0):
    """Retries `check` until it passes or `within` seconds are over. pytest's
    own failures (`pytest.raises` not raising) are BaseExceptions, so they
    are caught explicitly."""
    deadline = time.time() + within
    while True:
        try:
            return check()
        except (Exception, pytest.fail.Exception):
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def test_cli_admin_api_and_sdks_together(gateway):
    admin = dict(env_url=gateway["admin"], key=gateway["cred"])
    [tenant] = cli("tenants", "create", "acme", "--tier", "premium", **admin)
    [app] = cli("apps", "create", "web", "--tenant", tenant["id"], **admin)
    [key] = cli("keys", "create", "ci", "--app", app["id"], **admin)
    secret = key["secret"]
    assert secret.startswith("sk-sluice-")
    listed = cli("keys", "list", "--app", app["id"], **admin)[0]
    assert listed["data"][0]["prefix"] == secret[:14] and secret not in json.dumps(listed)

    oa = openai.OpenAI(base_url=f"{gateway['url']}/v1", api_key=secret, max_retries=0)
    reply = eventually(lambda: oa.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "hello there"}]))
    assert reply.choices[0].message.content
    an = anthropic.Anthropic(base_url=gateway["url"], api_key=secret, max_retries=0)
    msg = an.messages.create(model="mock-1", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text

    # A model that needs approval: 403 until an approved subscription.
    with pytest.raises(openai.PermissionDeniedError) as e:
        oa.chat.completions.create(model="gated", messages=[{"role": "user", "content": "x"}])
    assert "needs an approved subscription to model `gated`" in str(e.value)
    [sub] = cli("subscriptions", "request", "model:gated", "--app", app["id"], **admin)
    assert sub["state"] == "pending"

    def pending():
        with pytest.raises(openai.PermissionDeniedError) as e:
            oa.chat.completions.create(model="gated", messages=[{"role": "user", "content": "x"}])
        assert "is pending approval" in str(e.value)

    eventually(pending)
    [approved] = cli("subscriptions", "approve", sub["id"], **admin)
    assert approved["state"] == "approved"
    stream = eventually(lambda: oa.chat.completions.create(model="gated", stream=True, messages=[{"role": "user", "content": "a b c"}]))
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    # Revocation: refused within a second.
    cli("keys", "revoke", key["id"], **admin)

    def refused():
        with pytest.raises(openai.AuthenticationError):
            oa.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "x"}])

    eventually(refused, within=1.0)

    # The audit log: the CLI's first admin, then the API's changes by that admin.
    audit = cli("audit", "--limit", "50", **admin)[0]["data"]
    actions = [(a["action"], a["actor"]) for a in audit]
    assert actions[-1][0] == "user.create" and actions[-1][1].startswith("cli:"), actions[-1]
    for action in ["tenant.create", "app.create", "key.create", "subscription.request", "subscription.approve", "key.revoke"]:
        assert any(a == action and actor == approved["decided_by"] for a, actor in actions), action
    dump = json.dumps(audit)
    assert secret not in dump and gateway["cred"] not in dump


def test_cli_acts_on_a_store_directly(tmp_path):
    store = f"sqlite://{tmp_path / 'direct.db'}"
    [tenant] = cli("tenants", "create", "direct-co", "--tier", "free", "--store", store)
    listed = cli("tenants", "list", "--name", "direct", "--store", store)[0]["data"]
    assert [t["id"] for t in listed] == [tenant["id"]]
    # Errors are clear and exit non-zero; nothing is half-done.
    bad = subprocess.run([binary("SLUICE_BIN"), "tenants", "create", "direct-co", "--store", store], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "409" in bad.stderr and "already taken" in bad.stderr, bad.stderr
    [entry] = cli("audit", "--action", "tenant.create", "--store", store)[0]["data"]
    assert entry["actor"].startswith("cli:") and entry["target_id"] == tenant["id"]
