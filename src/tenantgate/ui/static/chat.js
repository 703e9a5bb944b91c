// The hosted chat: a key of the person's own (minted per browser session), the tenant's data plane
// with streaming, a stop button that closes the stream (the gateway then cancels upstream and
// charges what was delivered), and the queue position the gateway sends while the request waits.
import { callApi } from "/ui/assets/ui.js";

const root = document.querySelector("[data-chat]");
const tenant = root.dataset.tenant;
const { prices, currency } = JSON.parse(document.getElementById("chat-prices").textContent);
const messagesBox = root.querySelector("[data-messages]");
const statusLine = root.querySelector("[data-status]");
const errorBox = root.querySelector("[data-error]");
const form = root.querySelector("[data-ask]");
const modelSelect = root.querySelector("[data-models]");
const sendButton = root.querySelector("[data-send]");
const stopButton = root.querySelector("[data-stop]");
const storageKey = `tenantgate-chat:${tenant}:${root.dataset.user}`;  // one person's key, never the next person's
const history = [];
let running = null;

async function chatKey(fresh = false) {
  let key = fresh ? null : sessionStorage.getItem(storageKey);
  if (!key) {
    key = (await callApi(`/ui/tenants/${encodeURIComponent(tenant)}/chat-key`, "POST")).key;
    sessionStorage.setItem(storageKey, key);
  }
  return key;
}

async function dataPlane(path, init, retried = false) {
  const key = await chatKey();
  const response = await fetch(path, { ...init, headers: { ...(init.headers ?? {}), Authorization: `Bearer ${key}` } });
  if (response.status === 401 && !retried) {
    sessionStorage.removeItem(storageKey); // expired or revoked: this session mints a new one
    await chatKey(true);
    return dataPlane(path, init, true);
  }
  return response;
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    const error = body.error ?? {};
    let message = error.message ?? `The request failed (HTTP ${response.status}).`;
    if (error.reset_at) message += ` It resets at ${new Date(error.reset_at).toLocaleString()}.`;
    return message;
  } catch {
    return `The request failed (HTTP ${response.status}).`;
  }
}

async function loadModels() {
  try {
    const response = await dataPlane("/v1/models", { method: "GET" });
    if (!response.ok) throw new Error(await errorMessage(response));
    const models = (await response.json()).data.map((m) => m.id).sort();
    modelSelect.replaceChildren(...models.map((id) => new Option(id, id)));
    if (!models.length) showError("No model is available to your organisation yet; ask its owner.");
  } catch (error) {
    modelSelect.replaceChildren(new Option("No models", ""));
    showError(error.message);
  }
}

// Markdown, safely: the answer becomes DOM nodes through textContent only, never HTML.
function renderMarkdown(text, into) {
  into.replaceChildren();
  const parts = text.split(/```/);
  parts.forEach((part, index) => {
    if (index % 2 === 1) {
      const newline = part.indexOf("\n");
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      code.textContent = newline >= 0 ? part.slice(newline + 1) : part;
      if (newline > 0) code.dataset.language = part.slice(0, newline).trim();
      pre.append(code);
      into.append(pre);
      return;
    }
    for (const block of part.split(/\n{2,}/)) {
      if (!block.trim()) continue;
      const lines = block.split("\n");
      if (lines.every((line) => /^\s*[-*] /.test(line))) {
        const list = document.createElement("ul");
        for (const line of lines) list.append(inline(document.createElement("li"), line.replace(/^\s*[-*] /, "")));
        into.append(list);
      } else {
        into.append(inline(document.createElement("p"), block));
      }
    }
  });
}

function inline(element, text) {
  for (const [index, piece] of text.split(/(`[^`]+`|\*\*[^*]+\*\*)/).entries()) {
    if (index % 2 === 0) { element.append(document.createTextNode(piece)); continue; }
    const node = document.createElement(piece.startsWith("`") ? "code" : "strong");
    node.textContent = piece.startsWith("`") ? piece.slice(1, -1) : piece.slice(2, -2);
    element.append(node);
  }
  return element;
}

function bubble(role, text) {
  root.querySelector("[data-empty]")?.remove();
  const item = document.createElement("article");
  item.className = `message ${role}`;
  item.setAttribute("aria-label", role === "user" ? "You" : "Assistant");
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = text;
  item.append(body);
  messagesBox.append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function costOf(model, usage) {
  const price = prices[model];
  if (!usage) return "";
  if (!price) return " · no price set for this model";
  const micros = (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6;
  return ` · ${(micros / 1e6).toFixed(6)} ${currency}`;
}

async function ask(model, assistant) {
  const controller = new AbortController();
  running = controller;
  const answer = assistant.querySelector(".body");
  let text = "";
  let usage = null;
  statusLine.textContent = "Sending…";
  try {
    const response = await dataPlane("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model, messages: history, stream: true, stream_options: { include_usage: true } }),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split("\n");
      buffer = lines.pop();
      for (const line of lines) {
        if (line.startsWith(": queue ")) {
          const place = JSON.parse(line.slice(8));
          if (place.position === undefined) { statusLine.textContent = "Starting…"; continue; }
          const start = place.predicted_start_ms == null ? "" : `, starting in ~${Math.max(1, Math.round(place.predicted_start_ms / 1000))} s`;
          statusLine.textContent = `Queue position ${place.position + 1}${start}`;  // position counts those ahead
        } else if (line.startsWith("data: ") && line !== "data: [DONE]") {
          const chunk = JSON.parse(line.slice(6));
          if (chunk.error) throw new Error(chunk.error.message ?? "The answer failed.");
          if (chunk.usage) usage = chunk.usage;
          const delta = chunk.choices?.[0]?.delta?.content;
          if (delta) {
            if (!text) statusLine.textContent = "Answering…";
            text += delta;
            answer.textContent = text;
          }
        }
      }
    }
    history.push({ role: "assistant", content: text });
    renderMarkdown(text, answer);
    statusLine.textContent = usage
      ? `${usage.prompt_tokens} tokens in, ${usage.completion_tokens} out${costOf(model, usage)}`
      : "Done.";
  } catch (error) {
    if (controller.signal.aborted) {
      if (text) history.push({ role: "assistant", content: text });
      renderMarkdown(text, answer);
      assistant.dataset.stopped = "1";
      statusLine.textContent = text
        ? `Stopped after ${text.length} characters; what was delivered is charged.`
        : "Stopped before the answer began.";
      return;
    }
    throw error;
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = form.elements.message.value.trim();
  const model = modelSelect.value;
  if (!message || !model || running) return;
  errorBox.hidden = true;
  history.push({ role: "user", content: message });
  bubble("user", message);
  form.elements.message.value = "";
  const assistant = bubble("assistant", "");
  sendButton.disabled = true;
  stopButton.disabled = false;
  try {
    await ask(model, assistant);
  } catch (error) {
    history.pop();
    assistant.remove();
    statusLine.textContent = "";
    showError(error.message);
  } finally {
    running = null;
    sendButton.disabled = false;
    stopButton.disabled = true;
  }
});

stopButton.addEventListener("click", () => running?.abort());
loadModels();
