"""Server pieces that need no model: stop matching, tool-call parsers, reasoning split,
error bodies, field checks, config."""

import pytest
from hypothesis import given, settings, strategies as st

from alloy.serve.api.common import check_fields, stop_list
from alloy.serve.api.errors import ApiError, dialect_for_path, error_body
from alloy.serve.config import ServeConfig, default_port
from alloy.serve.engine.stops import StopMatcher
from alloy.serve.reasoning import ReasoningSplitter
from alloy.serve.tools import ToolCall, parser_for
from alloy.serve.tools.gemma import calls_from_python


def _run_stops(chunks, stops):
    m = StopMatcher(stops)
    out = ""
    for c in chunks:
        text, matched = m.feed(c)
        out += text
        if matched is not None:
            return out, matched
    return out + m.flush(), None


def test_stop_split_across_chunks():
    assert _run_stops(["Hello wo", "rld! END", "ING more"], ["END"]) == ("Hello world! ", "END")
    assert _run_stops(["a<", "|", "im_e", "nd|>b"], ["<|im_end|>"]) == ("a", "<|im_end|>")
    # a partial match that diverges is released, not swallowed
    assert _run_stops(["ab", "c"], ["abd"]) == ("abc", None)
    assert _run_stops(["x", "ab"], ["abd"]) == ("xab", None)


def test_stop_earliest_of_several():
    assert _run_stops(["one two three"], ["three", "two"]) == ("one ", "two")


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet="abc\n", max_size=40), stops=st.lists(
    st.text(alphabet="abc\n", min_size=1, max_size=4), min_size=1, max_size=3),
    cuts=st.lists(st.integers(0, 40), max_size=8))
def test_stop_matches_whole_text_search(text, stops, cuts):
    bounds = sorted(set([0, len(text)] + [c for c in cuts if c <= len(text)]))
    chunks = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    out, matched = _run_stops(chunks, stops)
    # Generation stops at the first chunk (token) that completes any stop; within the text
    # seen so far, the earliest-starting stop wins.
    for b in bounds[1:]:
        seen = text[:b]
        hits = [seen.find(s) for s in stops if s in seen]
        if hits:
            assert out == text[:min(hits)]
            assert matched is not None and text[min(hits):].startswith(matched)
            break
    else:
        assert out == text and matched is None


def _parse(family, chunks):
    p = parser_for(family)
    items = []
    for c in chunks:
        items += p.feed(c)
    items += p.finish()
    text = "".join(i for i in items if isinstance(i, str))
    calls = [(c.name, c.arguments) for c in items if isinstance(c, ToolCall)]
    return text, calls


def test_hermes_parser_streaming():
    out = 'Sure. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    for step in (1, 3, 7, len(out)):
        chunks = [out[i:i + step] for i in range(0, len(out), step)]
        assert _parse("chatml", chunks) == ("Sure. ", [("get_weather", {"city": "Paris"})])


def test_hermes_parser_two_calls_and_plain_text():
    out = ('<tool_call>{"name": "a", "arguments": {}}</tool_call>'
           '<tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call>')
    assert _parse("qwen3", [out]) == ("", [("a", {}), ("b", {"x": 1})])
    assert _parse("chatml", ["just <tool", " talk"]) == ("just <tool talk", [])
    # a malformed block is shown as text, never dropped
    assert _parse("chatml", ["<tool_call>not json</tool_call>"]) == (
        "<tool_call>not json</tool_call>", [])


def test_llama3_parser():
    assert _parse("llama3", ['<|python_tag|>{"name": "f", ', '"parameters": {"a": 2}}']) == (
        "", [("f", {"a": 2})])
    assert _parse("llama3", ["Hello {not a call}"]) == ("Hello {not a call}", [])
    assert _parse("llama3", ['{"name": "f"'])[1] == []  # incomplete JSON stays text


def test_gemma_parser_tool_code_and_json():
    out = 'Let me check.\n```tool_code\nget_weather(city="Paris", days=2)\n```'
    assert _parse("gemma", [out[:20], out[20:]]) == (
        "Let me check.\n", [("get_weather", {"city": "Paris", "days": 2})])
    assert _parse("gemma", ['{"name": "f", "parameters": {}}']) == ("", [("f", {})])
    assert calls_from_python("os.system('x') + 1") is None


def test_mistral_parser():
    assert _parse("mistral", ['[TOOL_CALLS][{"name": "f", "arguments": {"q": "x"}}]']) == (
        "", [("f", {"q": "x"})])


def _split(chunks, opened=False):
    s = ReasoningSplitter(opened=opened)
    r = c = ""
    for ch in chunks:
        a, b = s.feed(ch)
        r, c = r + a, c + b
    a, b = s.finish()
    return r + a, c + b


def test_reasoning_split():
    text = "<think>step 1\nstep 2</think>\n\nThe answer is 4."
    for step in (1, 2, 5, len(text)):
        chunks = [text[i:i + step] for i in range(0, len(text), step)]
        assert _split(chunks) == ("step 1\nstep 2", "The answer is 4.")
    assert _split(["plain <think> later"]) == ("", "plain <think> later")
    assert _split(["still thinking"]) == ("", "still thinking")
    assert _split(["opened by the template</think>done"], opened=True) == (
        "opened by the template", "done")


def test_error_bodies_per_dialect():
    err = ApiError("invalid_request", "temperature: must be between 0 and 2", param="temperature")
    assert error_body("openai", err) == {"error": {
        "message": "temperature: must be between 0 and 2", "type": "invalid_request_error",
        "param": "temperature", "code": None}}
    assert error_body("anthropic", err) == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "temperature: must be between 0 and 2"}}
    assert error_body("ollama", err) == {"error": "temperature: must be between 0 and 2"}
    assert ApiError("overloaded", "busy").status == 503
    assert dialect_for_path("/v1/messages/count_tokens") == "anthropic"
    assert dialect_for_path("/api/chat") == "ollama"
    assert dialect_for_path("/v1/chat/completions") == "openai"


def test_field_checks_name_the_field():
    with pytest.raises(ApiError) as e:
        check_fields({"model": "m", "mirostat": 1}, {"model"})
    assert e.value.param == "mirostat" and e.value.status == 400
    with pytest.raises(ApiError) as e:
        stop_list([1, 2], "stop")
    assert e.value.param == "stop"


def test_config_port(monkeypatch):
    monkeypatch.delenv("ALLOY_PORT", raising=False)
    assert default_port() == 11434 and ServeConfig().port == 11434
    monkeypatch.setenv("ALLOY_PORT", "11435")
    assert default_port() == 11435
    monkeypatch.setenv("ALLOY_PORT", "eleven")
    with pytest.raises(ValueError, match="ALLOY_PORT"):
        default_port()
    with pytest.raises(ValueError, match="max_queue"):
        ServeConfig(max_queue=-1)


class _FakeServed:
    """Just what chat_events needs: the family's tool parser."""

    def tool_parser(self):
        return parser_for("chatml")


async def _events(pieces):
    from alloy.serve.engine.request import FinishEvent, TokenEvent, Usage

    for i, text in enumerate(pieces):
        yield TokenEvent(0, text, [i])
    yield FinishEvent(0, "stop", Usage(5, len(pieces)))


def test_chat_pipeline_splits_reasoning_and_tool_calls():
    import asyncio

    from alloy.serve.api.common import ChoiceDelta, ChoiceEnd, chat_events

    pieces = ["<thi", "nk>plan", " it</th", "ink>\n", "Calling.", "<tool_", "call>{\"name\": ",
              "\"f\", \"arguments\": {\"x\": 1}}</tool_call>"]

    async def collect(mode):
        return [ev async for ev in chat_events(_FakeServed(), _events(pieces), tools_mode=mode)]

    evs = asyncio.run(collect("auto"))
    deltas = [e for e in evs if isinstance(e, ChoiceDelta)]
    assert "".join(d.reasoning for d in deltas) == "plan it"
    assert "".join(d.content for d in deltas) == "Calling."
    end = evs[-1]
    assert isinstance(end, ChoiceEnd) and end.reason == "tool_calls"
    assert [(c.name, c.arguments) for c in end.tool_calls] == [("f", {"x": 1})]
    # without tools nothing is parsed: the markup stays visible
    evs = asyncio.run(collect("none"))
    assert "<tool_call>" in "".join(e.content for e in evs if isinstance(e, ChoiceDelta))
    assert evs[-1].reason == "stop"
