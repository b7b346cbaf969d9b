"""Chat templates: exact renderings, fallbacks, tools, and agreement with transformers' renderer."""
from __future__ import annotations

import json
import pathlib

import pytest

from alloy.serve.gguf.chat_template import ChatTemplate, ChatTemplateError, detect_family, fallback_source

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
SMOLLM2 = (FIXTURES / "smollm2_135m_chat_template.jinja").read_text(encoding="utf-8")
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "2+2?"},
]


def smollm2():
    return ChatTemplate(SMOLLM2, origin="smollm2 file")


def gemma():
    return ChatTemplate.fallback("gemma", {"bos_token": "<bos>", "eos_token": "<eos>"})


# -- the SmolLM2 file's template -------------------------------------------------------------------

def test_smollm2_default_system_prompt():
    assert smollm2().render([{"role": "user", "content": "Hi"}]) == (
        f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n")


def test_smollm2_conversation_without_generation_prompt():
    assert smollm2().render(CHAT, add_generation_prompt=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n")


def test_smollm2_tools_fallback_into_system_prompt():
    t = smollm2()
    assert not t.uses_tools
    out = t.render([{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL])
    assert out == (
        "<|im_start|>system\n# Tools\n\n"
        "You may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{json.dumps(WEATHER_TOOL)}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n"
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n")


def test_tool_calls_and_results_rewritten_for_tool_unaware_template():
    messages = [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "2", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
        {"role": "tool", "tool_call_id": "1", "content": "18C"},
        {"role": "tool", "tool_call_id": "2", "content": "25C"},
    ]
    out = smollm2().render(messages, tools=[WEATHER_TOOL])
    assert out.startswith("<|im_start|>system\nSys.\n\n# Tools\n\n")
    assert out.endswith(
        "<|im_start|>user\nWeather in Paris and Rome?<|im_end|>\n"
        "<|im_start|>assistant\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n18C\n</tool_response>\n<tool_response>\n25C\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n")


def test_text_parts_are_joined():
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}]
    assert "<|im_start|>user\nHi there<|im_end|>" in smollm2().render(parts)


# -- fallbacks -------------------------------------------------------------------------------------

def test_gemma_fallback_folds_system_into_first_user_turn():
    assert gemma().render(CHAT) == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\n2+2?<end_of_turn>\n"
        "<start_of_turn>model\n")


def test_gemma_fallback_without_generation_prompt_and_system():
    out = gemma().render([{"role": "user", "content": " Hi \n"}], add_generation_prompt=False)
    assert out == "<bos><start_of_turn>user\nHi<end_of_turn>\n"


def test_gemma_fallback_tools_go_into_first_user_turn():
    out = gemma().render([{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL])
    assert out.startswith("<bos><start_of_turn>user\n# Tools\n\n")
    assert json.dumps(WEATHER_TOOL) in out
    assert out.endswith("</tool_call>\n\nWeather?<end_of_turn>\n<start_of_turn>model\n")


def test_gemma_fallback_rejects_unknown_role():
    with pytest.raises(ChatTemplateError, match="fallback:gemma.*got 'narrator'"):
        gemma().render([{"role": "narrator", "content": "x"}])


def test_chatml_fallback():
    t = ChatTemplate.fallback("chatml")
    assert t.render(CHAT[:2]) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_llama3_fallback():
    t = ChatTemplate.fallback("llama3", {"bos_token": "<|begin_of_text|>"})
    assert t.render(CHAT[:2]) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_unknown_fallback_family():
    with pytest.raises(ChatTemplateError, match="no fallback chat template for family 'mistral'"):
        fallback_source("mistral")


@pytest.mark.parametrize("arch,vocab,family", [
    ("gemma3", set(), "gemma"),
    ("gemma3", {"<|im_start|>", "<|im_end|>"}, "chatml"),  # the vocabulary decides first
    ("llama", {"<start_of_turn>", "<end_of_turn>"}, "gemma"),
    ("llama", {"<|start_header_id|>", "<|eot_id|>"}, "llama3"),
    ("qwen3", {"<|im_start|>", "<|im_end|>"}, "chatml"),
    ("llama", {"<s>", "</s>"}, "chatml"),
])
def test_detect_family(arch, vocab, family):
    assert detect_family(arch, vocab) == family


# -- the Jinja environment ---------------------------------------------------------------------------

def test_template_that_uses_tools_gets_them_unchanged():
    src = ("{% if tools %}TOOLS:{{ tools | tojson }}\n{% endif %}"
           "{% for m in messages %}{{ m.role }}={{ m.content }}\n{% endfor %}")
    t = ChatTemplate(src, origin="test")
    assert t.uses_tools
    tool = {"name": "f", "description": "a < b & c"}
    assert t.render([{"role": "user", "content": "x"}], tools=[tool]) == \
        'TOOLS:[{"name": "f", "description": "a < b & c"}]\nuser=x\n'  # tojson does not HTML-escape


def test_kwargs_special_tokens_and_helpers():
    src = ("{{ bos_token }}|{{ eos_token }}|{{ enable_thinking }}|{{ strftime_now('%Y') | length }}|"
           "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content }}{% endfor %}")
    t = ChatTemplate(src, origin="test", special_tokens={"bos_token": "<s>", "eos_token": None})
    out = t.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], enable_thinking=False)
    assert out == "<s>||False|4|a"


def test_trim_and_lstrip_blocks():
    src = "{% for m in messages %}\n    {% if true %}\n{{ m.content }}\n    {% endif %}\n{% endfor %}"
    assert ChatTemplate(src, origin="test").render([{"role": "user", "content": "x"}]) == "x\n"


def test_raise_exception_is_a_clear_error():
    t = ChatTemplate("{{ raise_exception('roles must alternate') }}", origin="some.gguf (tokenizer.chat_template)")
    expected = r"template \(some\.gguf \(tokenizer\.chat_template\)\): roles must alternate"
    with pytest.raises(ChatTemplateError, match=expected):
        t.render([{"role": "user", "content": "x"}])


def test_sandbox_blocks_attribute_escape():
    t = ChatTemplate("{{ messages.__class__.__mro__ }}", origin="evil")
    with pytest.raises(ChatTemplateError, match="evil"):
        t.render([{"role": "user", "content": "x"}])


def test_bad_template_source():
    with pytest.raises(ChatTemplateError, match=r"chat template \(bad\) does not compile"):
        ChatTemplate("{% for m in messages %}", origin="bad")


def test_bad_messages():
    with pytest.raises(ChatTemplateError, match="messages must be a list of dicts"):
        smollm2().render([{"content": "no role"}])


# -- agreement with transformers' own renderer --------------------------------------------------------

@pytest.mark.parametrize("source", [SMOLLM2, fallback_source("gemma"), fallback_source("chatml"),
                                    fallback_source("llama3")], ids=["smollm2", "gemma", "chatml", "llama3"])
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_matches_transformers_rendering(source, add_generation_prompt):
    from transformers.utils.chat_template_utils import render_jinja_template

    specials = {"bos_token": "<bos>", "eos_token": "<eos>"}
    for messages in (CHAT, CHAT[1:], CHAT[1:2]):
        ours = ChatTemplate(source, origin="t", special_tokens=specials).render(
            messages, add_generation_prompt=add_generation_prompt)
        theirs, _ = render_jinja_template([messages], chat_template=source,
                                          add_generation_prompt=add_generation_prompt, **specials)
        assert ours == theirs[0]


@pytest.mark.slow
def test_fixture_is_the_smollm2_files_template():
    from alloy.serve.gguf.reader import GGUFFile
    from alloy.serve.gguf.resolve import resolve_model

    assert GGUFFile(resolve_model("smollm2:135m").path).get("tokenizer.chat_template") == SMOLLM2
