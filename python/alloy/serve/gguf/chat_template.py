"""Chat templates: render a GGUF file's ``tokenizer.chat_template`` the way transformers does.

The template is Jinja run in an ``ImmutableSandboxedEnvironment`` with
``trim_blocks``/``lstrip_blocks``, the ``loopcontrols`` extension, and the
helpers Hugging Face templates expect: ``raise_exception``, ``strftime_now``
and a ``tojson`` filter that does not HTML-escape. Variables: ``messages``,
``tools``, ``add_generation_prompt``, the special tokens (``bos_token``,
``eos_token``, ``unk_token``, ``pad_token``) and any extra keyword such as
``enable_thinking``.

Fallbacks (``templates/<family>.jinja``) are used when a file carries no
template (Gemma 3 270M ships none). The family is picked from the
architecture and the vocabulary (:func:`detect_family`):

* ``gemma``  -- a ``<start_of_turn>`` token: Gemma 3 turns, the system prompt
  folded into the first user turn;
* ``llama3`` -- ``<|start_header_id|>`` and ``<|eot_id|>`` tokens;
* ``chatml`` -- an ``<|im_start|>`` token, and the default for anything else
  (except architecture ``gemma*`` with none of these tokens: ``gemma``).

Tools: when the template uses the ``tools`` variable it gets the tool list and
the messages as given. When it does not (fallbacks, SmolLM2's template), the
conversation is rewritten Hermes-style before rendering: the tool definitions
go into the system prompt as a ``<tools>`` JSON block with ``<tool_call>``
instructions, assistant ``tool_calls`` become ``<tool_call>`` JSON text, and
``tool`` results become a user turn of ``<tool_response>`` blocks. In every
case a message ``content`` given as a list of text parts is joined into one
string, and a missing ``content`` is read as ``""`` for tool-unaware templates.
"""
from __future__ import annotations

import json
from collections.abc import Container
from datetime import datetime
from functools import lru_cache
from importlib import resources

from .errors import GGUFError

__all__ = ["ChatTemplate", "ChatTemplateError", "FAMILIES", "detect_family", "fallback_source",
           "TOOLS_SYSTEM_PROMPT"]

FAMILIES = ("gemma", "llama3", "chatml")

TOOLS_SYSTEM_PROMPT = (
    "# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n"
    "<tools>\n{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n"
    "<tool_call>\n{{\"name\": <function-name>, \"arguments\": <args-json-object>}}\n</tool_call>"
)


class ChatTemplateError(GGUFError):
    """A chat template failed to compile or render (including its own ``raise_exception``)."""


def detect_family(arch: str, vocab: Container[str]) -> str:
    """The turn format of a model, from its architecture and vocabulary (see the module doc)."""
    if "<start_of_turn>" in vocab:
        return "gemma"
    if "<|start_header_id|>" in vocab and "<|eot_id|>" in vocab:
        return "llama3"
    if "<|im_start|>" not in vocab and arch.startswith("gemma"):
        return "gemma"
    return "chatml"


def fallback_source(family: str) -> str:
    """The Jinja source of the packaged fallback template for ``family``."""
    if family not in FAMILIES:
        raise ChatTemplateError(f"no fallback chat template for family {family!r} (known: {', '.join(FAMILIES)})")
    return resources.files(__package__).joinpath("templates", f"{family}.jinja").read_text(encoding="utf-8")


class ChatTemplate:
    """A compiled chat template and the special tokens it is rendered with.

    ``origin`` names where the source came from (a file path, or ``"fallback:gemma"``)
    and appears in every error.
    """

    def __init__(self, source: str, *, origin: str, special_tokens: dict[str, str | None] | None = None):
        import jinja2
        import jinja2.meta

        self.source = source
        self.origin = origin
        self.special_tokens = {k: v or "" for k, v in (special_tokens or {}).items()}
        env = _environment()
        try:
            self._template = env.from_string(source)
            self.uses_tools = "tools" in jinja2.meta.find_undeclared_variables(env.parse(source))
        except jinja2.TemplateError as e:
            raise ChatTemplateError(f"chat template ({origin}) does not compile: {e}") from e

    @property
    def is_fallback(self) -> bool:
        return self.origin.startswith("fallback:")

    @classmethod
    def fallback(cls, family: str, special_tokens: dict[str, str | None] | None = None) -> "ChatTemplate":
        return cls(fallback_source(family), origin=f"fallback:{family}", special_tokens=special_tokens)

    def render(self, messages: list[dict], tools: list[dict] | None = None,
               add_generation_prompt: bool = True, **template_kwargs) -> str:
        """The prompt text for ``messages`` (OpenAI-style dicts: role, content, tool_calls)."""
        import jinja2

        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise ChatTemplateError(f"chat template ({self.origin}): messages must be a list of dicts with a 'role'")
        messages = [_join_text_parts(m) for m in messages]
        if not self.uses_tools:
            messages = _tools_as_text(messages, tools)
        variables = dict(self.special_tokens)
        variables.update(template_kwargs)
        variables.update(messages=messages, tools=tools or None, add_generation_prompt=add_generation_prompt)
        try:
            return self._template.render(**variables)
        except jinja2.TemplateError as e:
            raise ChatTemplateError(f"chat template ({self.origin}): {e}") from e
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise ChatTemplateError(f"chat template ({self.origin}) failed on these messages: "
                                    f"{type(e).__name__}: {e}") from e


@lru_cache(maxsize=1)
def _environment():
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def _join_text_parts(message: dict) -> dict:
    content = message.get("content")
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return {**message, "content": "".join(p.get("text", "") for p in content)}
    return message


def _tool_call_text(call: dict) -> str:
    fn = call.get("function", call)
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            pass
    call_json = json.dumps({"name": fn.get("name"), "arguments": args}, ensure_ascii=False)
    return f"<tool_call>\n{call_json}\n</tool_call>"


def _tools_as_text(messages: list[dict], tools: list[dict] | None) -> list[dict]:
    """Hermes-style rewrite of tools, tool calls and tool results for a template that ignores them."""
    out: list[dict] = []
    for m in messages:
        content = m.get("content")
        content = "" if content is None else content
        if m["role"] == "assistant" and m.get("tool_calls"):
            calls = "\n".join(_tool_call_text(c) for c in m["tool_calls"])
            out.append({"role": "assistant", "content": f"{content}\n{calls}" if content else calls})
        elif m["role"] == "tool":
            block = f"<tool_response>\n{content}\n</tool_response>"
            if out and out[-1].get("_tool_results"):
                out[-1] = {**out[-1], "content": out[-1]["content"] + "\n" + block}
            else:
                out.append({"role": "user", "content": block, "_tool_results": True})
        else:
            out.append({**m, "content": content})
    out = [{k: v for k, v in m.items() if k != "_tool_results"} for m in out]
    if tools:
        block = TOOLS_SYSTEM_PROMPT.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools))
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{block}" if out[0]["content"] else block}
        else:
            out.insert(0, {"role": "system", "content": block})
    return out
