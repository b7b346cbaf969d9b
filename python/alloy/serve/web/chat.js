// Alloy chat: a small client for this server's OpenAI-compatible API.
// Replies stream from POST /v1/chat/completions (SSE); the whole conversation is sent each turn.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  model: $("model"), newChat: $("new-chat"), system: $("system"), temperature: $("temperature"),
  maxTokens: $("max-tokens"), apiKey: $("api-key"), log: $("log"), empty: $("empty"),
  error: $("error"), form: $("composer"), prompt: $("prompt"), send: $("send"), stop: $("stop"),
};

let history = [];       // finished turns, [{role, content}], without the system prompt
let controller = null;  // AbortController of the request in flight; null when idle
let pinned = true;      // keep the newest text in view unless the reader scrolled up

// Request headers; the API key only when one was entered.
function headers(json) {
  const h = json ? { "Content-Type": "application/json" } : {};
  const key = ui.apiKey.value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

// The server's message from an error reply ({error: {message}} or {error: "..."}).
async function errorMessage(resp) {
  let msg = `HTTP ${resp.status} ${resp.statusText}`.trim();
  try {
    const err = (await resp.json()).error;
    if (typeof err === "string") msg = err;
    else if (err && err.message) msg = err.message;
  } catch (_) { /* not JSON: keep the status line */ }
  const retry = resp.headers.get("Retry-After");
  return retry ? `${msg} (retry in ${retry} s)` : msg;
}

function describeError(err) {
  // fetch rejects with a TypeError when the server cannot be reached or the connection drops
  return err instanceof TypeError ? `Cannot reach the server (${err.message})` : err.message;
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = !text;
}

// Fill the model picker from GET /v1/models, keeping the current choice if still served.
async function loadModels() {
  const previous = ui.model.value;
  try {
    const resp = await fetch("/v1/models", { headers: headers(false) });
    if (!resp.ok) throw new Error(await errorMessage(resp));
    const ids = (await resp.json()).data.map((m) => m.id);
    if (!ids.length) throw new Error("the server lists no models");
    ui.model.replaceChildren(...ids.map((id) => new Option(id, id)));
    if (ids.includes(previous)) ui.model.value = previous;
    showError("");
  } catch (err) {
    ui.model.replaceChildren(new Option("(no models)", ""));
    showError("Could not list the models: " + describeError(err));
  }
}

function scrollDown() {
  if (pinned) ui.log.scrollTop = ui.log.scrollHeight;
}

// Append a message to the log; returns its parts so a reply can be streamed into it.
function addMessage(role, text) {
  ui.empty.hidden = true;
  const item = document.createElement("article");
  item.className = "msg " + role;
  const who = document.createElement("h2");
  who.textContent = role === "user" ? "You" : "Assistant";
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  const meta = document.createElement("p");
  meta.className = "meta";
  item.append(who, body, meta);
  ui.log.append(item);
  scrollDown();
  return { item, body, meta, thinking: null };
}

// Reasoning text (reasoning_content) goes to a collapsed "Thinking" block above the reply.
function appendThinking(msg, text) {
  if (!msg.thinking) {
    const box = document.createElement("details");
    box.className = "thinking";
    const summary = document.createElement("summary");
    summary.textContent = "Thinking";
    msg.thinking = document.createElement("div");
    box.append(summary, msg.thinking);
    msg.body.before(box);
  }
  msg.thinking.textContent += text;
}

// Yield the JSON payloads of a server-sent-events body; "data: [DONE]" ends it.
async function* sseEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      const blocks = buf.split(/\r?\n\r?\n/);
      buf = blocks.pop();  // an incomplete event waits for more bytes
      for (const block of blocks) {
        const data = block.split(/\r?\n/).filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart()).join("\n");
        if (data === "[DONE]") return;
        if (data) yield JSON.parse(data);
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// A number input's value, or undefined (left out of the request) when empty.
const numberOf = (input) => (input.value === "" ? undefined : Number(input.value));

function setBusy(busy) {
  ui.send.disabled = busy;
  ui.stop.disabled = !busy;
  ui.model.disabled = busy;
  ui.newChat.disabled = busy;
  ui.log.setAttribute("aria-busy", String(busy));
}

function footnote(finish, usage, ms) {
  const parts = [];
  if (usage) parts.push(`${usage.completion_tokens} tokens in ${(ms / 1000).toFixed(1)} s`);
  if (finish === "length") parts.push("cut off at the token limit");
  else if (!finish) parts.push("the reply ended early");
  return parts.join(" · ");
}

// One turn: send the conversation plus `text`, stream the reply into the log.
async function send(text) {
  const turn = [...history, { role: "user", content: text }];
  const system = ui.system.value.trim();
  const request = {
    model: ui.model.value,
    messages: system ? [{ role: "system", content: system }, ...turn] : turn,
    stream: true,
    stream_options: { include_usage: true },
    temperature: numberOf(ui.temperature),
    max_tokens: numberOf(ui.maxTokens),
  };
  showError("");
  const user = addMessage("user", text);
  const reply = addMessage("assistant", "");
  reply.item.classList.add("pending");
  controller = new AbortController();
  setBusy(true);
  const started = performance.now();
  let content = "", finish = null, usage = null;
  try {
    const resp = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(true), body: JSON.stringify(request),
      signal: controller.signal,
    });
    if (!resp.ok) throw new Error(await errorMessage(resp));
    for await (const event of sseEvents(resp.body)) {
      if (event.error) throw new Error(event.error.message || String(event.error));
      if (event.usage) usage = event.usage;
      const choice = event.choices && event.choices[0];
      if (!choice) continue;
      const delta = choice.delta || {};
      if (delta.reasoning_content) appendThinking(reply, delta.reasoning_content);
      if (delta.content) {
        content += delta.content;
        reply.body.textContent = content;
        scrollDown();
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    history = [...turn, { role: "assistant", content }];
    reply.meta.textContent = footnote(finish, usage, performance.now() - started);
  } catch (err) {
    const stopped = err.name === "AbortError";
    if (stopped && content) {
      // Stopped mid-reply: the partial reply stays in the conversation.
      history = [...turn, { role: "assistant", content }];
      reply.meta.textContent = "stopped";
    } else {
      // Failed, or stopped before any text: drop the turn and give the text back.
      user.item.remove();
      reply.item.remove();
      ui.empty.hidden = history.length > 0;
      if (!ui.prompt.value) ui.prompt.value = text;
      if (!stopped) showError(describeError(err));
    }
  } finally {
    reply.item.classList.remove("pending");
    controller = null;
    setBusy(false);
  }
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.prompt.value.trim();
  if (!text || controller) return;
  ui.prompt.value = "";
  send(text).finally(() => ui.prompt.focus());
});

// Enter sends, Shift+Enter starts a new line (not while an input method is composing).
ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});

// Aborting the fetch closes the connection; the server then cancels the generation.
ui.stop.addEventListener("click", () => controller && controller.abort());

ui.newChat.addEventListener("click", () => {
  history = [];
  ui.log.replaceChildren(ui.empty);
  ui.empty.hidden = false;
  showError("");
  ui.prompt.focus();
});

ui.log.addEventListener("scroll", () => {
  pinned = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
});

ui.apiKey.addEventListener("change", loadModels);
loadModels();
ui.prompt.focus();
