"""The official `openai` SDK against sluice, for every upstream wire."""

import json

import openai
import pytest

from conftest import CHAT_MODELS, KEY

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat(openai_client, model):
    raw = openai_client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "Say hello"}])
    assert raw.headers["x-sluice-model"] == model
    assert raw.headers["x-sluice-attempts"] == "1"
    resp = raw.parse()
    assert resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_stream_with_usage(openai_client, model):
    stream = openai_client.chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True}, messages=[{"role": "user", "content": "Say hello"}]
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_stream_without_usage_has_no_usage_chunk(openai_client, model):
    chunks = list(openai_client.chat.completions.create(model=model, stream=True, messages=[{"role": "user", "content": "hi"}]))
    assert chunks and all(c.usage is None for c in chunks)


@pytest.mark.parametrize("model", CHAT_MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_round_trip(openai_client, model, stream):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    if stream:
        calls = {}
        for chunk in openai_client.chat.completions.create(model=model, stream=True, tools=[WEATHER_TOOL], messages=messages):
            for c in chunk.choices:
                for tc in c.delta.tool_calls or []:
                    entry = calls.setdefault(tc.index, {"id": tc.id, "name": tc.function.name, "args": ""})
                    entry["args"] += tc.function.arguments or ""
        assert len(calls) == 1
        call = calls[0]
        call_id, name, args = call["id"], call["name"], call["args"]
    else:
        resp = openai_client.chat.completions.create(model=model, tools=[WEATHER_TOOL], messages=messages)
        assert resp.choices[0].finish_reason == "tool_calls"
        tc = resp.choices[0].message.tool_calls[0]
        call_id, name, args = tc.id, tc.function.name, tc.function.arguments
    assert call_id and name == "get_weather"
    assert "city" in json.loads(args)
    # Send the tool result back: the model answers in text.
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}]},
        {"role": "tool", "tool_call_id": call_id, "content": json.dumps({"sky": "sunny", "celsius": 21})},
    ]
    final = openai_client.chat.completions.create(model=model, tools=[WEATHER_TOOL], messages=messages)
    assert final.choices[0].message.content


@pytest.mark.parametrize("model", ["mock-embed", "embed-openai"])
def test_embeddings(openai_client, model):
    resp = openai_client.embeddings.create(model=model, input=["one", "two"])
    assert len(resp.data) == 2
    assert all(len(d.embedding) > 0 for d in resp.data)


def test_models_list(openai_client):
    ids = {m.id for m in openai_client.models.list()}
    assert {"mock-1", "via-openai", "via-anthropic", "via-gemini"} <= ids


def test_errors_are_typed(gateway, openai_client):
    bad = openai.OpenAI(base_url=f"{gateway['url']}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError) as e:
        openai_client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert "mock-1" in str(e.value)


def test_access_log_has_one_line_per_request_and_no_secret(gateway, openai_client):
    openai_client.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "x"}], extra_headers={"x-request-id": "e2e-log-probe"})
    import time

    for _ in range(50):
        lines = [json.loads(l) for l in gateway["log"].read_text().splitlines() if l.startswith("{")]
        probe = [l for l in lines if l.get("request_id") == "e2e-log-probe"]
        if probe:
            break
        time.sleep(0.05)
    assert len(probe) == 1
    assert probe[0]["key"] == "e2e" and probe[0]["status"] == 200 and probe[0]["tokens_out"] > 0
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}], extra_headers={"x-request-id": "e2e-log-error"})
    for _ in range(50):
        lines = [json.loads(l) for l in gateway["log"].read_text().splitlines() if l.startswith("{")]
        failed = [l for l in lines if l.get("request_id") == "e2e-log-error"]
        if failed:
            break
        time.sleep(0.05)
    assert len(failed) == 1
    assert (failed[0]["status"], failed[0]["error"], failed[0]["error_source"]) == (404, "model_not_found", "client")
    assert KEY not in gateway["log"].read_text()
