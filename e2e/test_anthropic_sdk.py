"""The official `anthropic` SDK against sluice's /v1/messages, for every
upstream wire: answers and streams come back in Anthropic's exact shape."""

import anthropic
import pytest

from conftest import CHAT_MODELS

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_message(anthropic_client, model):
    msg = anthropic_client.messages.create(model=model, max_tokens=128, system="Be brief.", messages=[{"role": "user", "content": "Say hello"}])
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens > 0


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_stream(anthropic_client, model):
    with anthropic_client.messages.stream(model=model, max_tokens=128, messages=[{"role": "user", "content": "Say hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", CHAT_MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_round_trip(anthropic_client, model, stream):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    if stream:
        with anthropic_client.messages.stream(model=model, max_tokens=256, tools=[WEATHER_TOOL], messages=messages) as s:
            msg = s.get_final_message()
    else:
        msg = anthropic_client.messages.create(model=model, max_tokens=256, tools=[WEATHER_TOOL], messages=messages)
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather"
    assert "city" in uses[0].input and uses[0].id
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny, 21C"}]},
    ]
    final = anthropic_client.messages.create(model=model, max_tokens=256, tools=[WEATHER_TOOL], messages=messages)
    assert final.content[0].type == "text" and final.content[0].text


def test_errors_are_typed(gateway, anthropic_client):
    bad = anthropic.Anthropic(base_url=gateway["url"], api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="mock-1", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.create(model="mock-1", max_tokens=10, messages=[])
