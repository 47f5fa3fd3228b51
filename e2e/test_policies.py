"""Resource policies through the official SDKs: the token-limit headers on a
normal answer, a token-limit refusal as the SDK's RateLimitError, and a
budget refusal as a 402 both SDKs raise without retrying (the upstream never
sees it)."""

import subprocess

import pytest

from conftest import ADMIN_KEY, binary, free_port, wait_http

KEY = "sk-sluice-e2e-policies-01"


@pytest.fixture(scope="module")
def policed(tmp_path_factory):
    port, admin = free_port(), free_port()
    config = f"""
listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin}
admin_key: {ADMIN_KEY}
providers:
  mock: {{ kind: mock, mock: {{ reply: "ok" }} }}
models:
  priced: {{ price: {{ input: 1000000, output: 1000000 }}, deployments: [ {{ provider: mock, model: priced }} ] }}
  cheap: {{ price: {{ input: 0.001, output: 0.001 }}, deployments: [ {{ provider: mock, model: cheap }} ] }}
keys:
  - name: policed
    key: {KEY}
    policy:
      rate_limit: {{ tokens_per_day: 5000 }}
      budget: {{ usd_per_day: 100 }}
"""
    path = tmp_path_factory.mktemp("policed") / "sluice.yaml"
    path.write_text(config)
    log = open(path.with_suffix(".log"), "w")
    proc = subprocess.Popen([binary("SLUICE_BIN"), "serve", "--config", str(path)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", proc, "sluice")
        yield {"url": url, "admin": f"http://127.0.0.1:{admin}"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_token_limit_headers_come_with_a_normal_answer(policed):
    import openai

    client = openai.OpenAI(base_url=f"{policed['url']}/v1", api_key=KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="priced", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "ok"
    assert raw.headers["x-ratelimit-limit-tokens"] == "5000"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 5000


def test_a_budget_refusal_is_a_402_the_sdks_do_not_retry(policed):
    import anthropic
    import openai

    # $1 a token: a request that may write 1000 tokens may cost $1000+.
    client = openai.OpenAI(base_url=f"{policed['url']}/v1", api_key=KEY, max_retries=3)
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="priced", max_tokens=1000, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 402
    assert e.value.body["code"] == "budget_exceeded"
    assert "budget of key `policed` exceeded" in e.value.body["message"]
    assert e.value.response.headers.get("retry-after")

    aclient = anthropic.Anthropic(base_url=policed["url"], api_key=KEY, max_retries=3)
    with pytest.raises(anthropic.APIStatusError) as e:
        aclient.messages.create(model="priced", max_tokens=1000, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 402
    assert e.value.body["error"]["type"] == "billing_error"
    # Two refusals, two requests: neither SDK retried a 402.
    import urllib.request

    metrics = urllib.request.urlopen(f"{policed['admin']}/metrics").read().decode()
    refused = [l for l in metrics.splitlines() if l.startswith("sluice_requests_total") and 'code="budget_exceeded"' in l]
    assert sum(float(l.rsplit(" ", 1)[1]) for l in refused) == 2, refused


def test_a_token_limit_refusal_is_the_sdks_rate_limit_error(policed):
    import openai

    client = openai.OpenAI(base_url=f"{policed['url']}/v1", api_key=KEY, max_retries=0)
    # More than the whole 5000-token quota (and well within the budget at
    # this model's price): refused for good, naming the limit.
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="cheap", max_tokens=6000, messages=[{"role": "user", "content": "hi"}])
    assert "token rate limit of key `policed`" in e.value.body["message"]
