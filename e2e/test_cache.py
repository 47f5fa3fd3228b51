"""The response cache seen by the official SDKs: a repeated request is a
hit (no upstream attempt) that each SDK parses like any answer, plain and
streamed, on both APIs."""

import uuid

MODEL = "cached-mock"


def test_openai_sdk_parses_hits_plain_and_streamed(openai_client):
    messages = [{"role": "user", "content": f"cache me {uuid.uuid4()}"}]
    first = openai_client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
    assert first.headers["x-sluice-cache"] == "miss"
    second = openai_client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
    assert second.headers["x-sluice-cache"] == "hit"
    assert second.headers["x-sluice-attempts"] == "0"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content

    stream = openai_client.chat.completions.create(
        model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.parse().choices[0].message.content
    assert chunks[-1].usage.completion_tokens == first.parse().usage.completion_tokens


def test_anthropic_sdk_parses_a_streamed_hit(anthropic_client):
    messages = [{"role": "user", "content": f"cache me {uuid.uuid4()}"}]
    first = anthropic_client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=messages)
    assert first.headers["x-sluice-cache"] == "miss"
    with anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=messages) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == first.parse().content[0].text
    assert final.stop_reason == first.parse().stop_reason
