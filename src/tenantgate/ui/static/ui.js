// The console's behaviour: forms and buttons that call the management API with the session's CSRF
// token, sortable and filterable tables, charts, copy buttons. Everything is progressive: the page
// is rendered by the server; this only wires it up.

export function csrfToken() {
  const found = document.cookie.split("; ").find((part) => part.startsWith("tenantgate_csrf="));
  return found ? decodeURIComponent(found.split("=")[1]) : "";
}

export async function callApi(url, method, body) {
  const headers = { "X-CSRF-Token": csrfToken() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                  credentials: "same-origin" });
  } catch {
    throw new Error("The gateway could not be reached; check the connection and try again.");
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    if (response.status === 401 && url !== "/api/v1/login") {
      window.location.assign(`/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    }
    throw new Error(data?.error?.message ?? `The request failed (HTTP ${response.status}).`);
  }
  return data;
}

function alertOf(element) {
  return element.querySelector("[role=alert]") ?? element.closest("section, form")?.querySelector("[role=alert]");
}

function showError(element, message) {
  const box = alertOf(element);
  if (box) { box.textContent = message; box.hidden = false; box.focus?.(); } else { window.alert(message); }
}

function formBody(form) {
  const body = {};
  for (const field of form.elements) {
    if (!field.name || field.disabled || field.type === "submit") continue;
    if (field.hasAttribute("data-each")) {  // checkboxes sharing a name: the list of those checked
      body[field.name] ??= [];
      if (field.checked) body[field.name].push(field.value);
      continue;
    }
    if (field.type === "checkbox") {  // a single box: true or false
      body[field.name] = field.checked;
      continue;
    }
    const value = field.value.trim();
    if (field.hasAttribute("data-message")) {  // textareas sharing a name: the messages, in order
      body[field.name] ??= [];
      if (value !== "") body[field.name].push({ role: field.dataset.message, content: value });
      continue;
    }
    if (value === "") continue;
    // "limits.rpm" nests: {"limits": {"rpm": ...}}
    const path = field.name.split(".");
    let target = body;
    for (const part of path.slice(0, -1)) target = target[part] ??= {};
    const name = path[path.length - 1];
    if (field.hasAttribute("data-list")) target[name] = value.split(",").map((v) => v.trim()).filter(Boolean);
    else if (field.type === "number") target[name] = Number(value);
    else target[name] = value;
  }
  return body;
}

function after(element, data) {
  const then = element.dataset.then;
  const show = element.dataset.show;
  if (show && data && data[show] !== undefined) {
    const box = document.getElementById(element.dataset.showIn);
    box.querySelector("[data-secret]").textContent = data[show];
    box.hidden = false;
    box.querySelector("button")?.focus();
    return;
  }
  if (element.dataset.api === "/api/v1/logout") sessionStorage.clear();  // the chat's key goes with the session
  if (then) window.location.assign(then);
  else window.location.reload();
}

async function submitForm(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = form.querySelector("[type=submit]");
  alertOf(form)?.setAttribute("hidden", "");
  button.disabled = true;
  try {
    after(form, await callApi(form.dataset.api, form.dataset.method ?? "POST", formBody(form)));
  } catch (error) {
    showError(form, error.message);
  } finally {
    button.disabled = false;
  }
}

async function pressButton(event) {
  const button = event.currentTarget;
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  button.disabled = true;
  try {
    const body = button.dataset.body === undefined ? undefined : JSON.parse(button.dataset.body);
    after(button, await callApi(button.dataset.api, button.dataset.method ?? "POST", body));
  } catch (error) {
    showError(button.closest("section") ?? document.body, error.message);
    button.disabled = false;
  }
}

function sortable(table) {
  const headers = [...table.tHead.rows[0].cells];
  headers.forEach((cell, column) => {
    const button = cell.querySelector("button");
    if (!button) return;
    button.addEventListener("click", () => {
      const ascending = cell.getAttribute("aria-sort") !== "ascending";
      headers.forEach((other) => other.removeAttribute("aria-sort"));
      cell.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const rows = [...table.tBodies[0].rows];
      const key = (row) => {
        const target = row.cells[column];
        const raw = target.dataset.value ?? target.textContent.trim();
        const number = Number(raw);
        return raw !== "" && !Number.isNaN(number) ? number : raw.toLowerCase();
      };
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      table.tBodies[0].append(...rows);
    });
  });
}

function filterable(input) {
  const table = document.getElementById(input.dataset.filter);
  input.addEventListener("input", () => {
    const needle = input.value.trim().toLowerCase();
    for (const row of table.tBodies[0].rows) row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
  });
}

function drawCharts() {
  const charts = document.querySelectorAll("[data-chart]");
  if (!charts.length) return;
  if (!window.Plotly) { window.addEventListener("load", drawCharts, { once: true }); return; }
  for (const element of charts) {
    if (element.dataset.drawn) continue;
    const figure = JSON.parse(document.getElementById(element.dataset.chart).textContent);
    window.Plotly.newPlot(element, figure.data, figure.layout, { displayModeBar: false, responsive: true });
    element.dataset.drawn = "1";
  }
}

function ssoForm(form) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const slug = form.elements.tenant.value.trim();
    const next = form.elements.next.value;
    window.location.assign(`/api/v1/sso/${encodeURIComponent(slug)}/start?next=${encodeURIComponent(next)}`);
  });
}

function bulk(section) {
  const text = section.querySelector("[data-bulk-text]");
  const result = section.querySelector("[data-bulk-result]");
  const applyButton = section.querySelector("[data-bulk-apply]");
  const show = (lines) => {
    const list = document.createElement("ul");
    for (const line of lines) {
      const item = document.createElement("li");
      item.textContent = line;
      list.append(item);
    }
    result.replaceChildren(list);
  };
  const send = async (dryRun) => {
    alertOf(section)?.setAttribute("hidden", "");
    try {
      const done = await callApi("/ui/apply", "POST", { text: text.value, dry_run: dryRun });
      const lines = done.changes.length ? [...done.changes] : ["No changes."];
      if (!dryRun) lines.unshift("Applied:");
      for (const [name, secret] of Object.entries(done.keys)) lines.push(`key ${name}: ${secret} (shown once)`);
      show(lines);
      applyButton.hidden = !dryRun || !done.changes.length;
    } catch (error) {
      applyButton.hidden = true;
      showError(section, error.message);
    }
  };
  section.querySelector("[data-bulk-file]").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (file) { text.value = await file.text(); applyButton.hidden = true; }
  });
  text.addEventListener("input", () => { applyButton.hidden = true; });
  section.querySelector("[data-bulk-preview]").addEventListener("click", () => send(true));
  applyButton.addEventListener("click", () => send(false));
}

function wire() {
  document.querySelectorAll("form[data-api]").forEach((form) => form.addEventListener("submit", submitForm));
  document.querySelectorAll("button[data-api]").forEach((button) => button.addEventListener("click", pressButton));
  document.querySelectorAll("table[data-sortable]").forEach(sortable);
  document.querySelectorAll("input[data-filter]").forEach(filterable);
  document.querySelectorAll("form[data-sso]").forEach(ssoForm);
  document.querySelectorAll("[data-bulk]").forEach(bulk);
  document.querySelectorAll("[data-copy]").forEach((button) => button.addEventListener("click", async () => {
    const text = document.querySelector(button.dataset.copy).textContent;
    try { await navigator.clipboard.writeText(text); button.textContent = "Copied"; } catch { button.textContent = "Select and copy"; }
  }));
  drawCharts();
}

wire();
