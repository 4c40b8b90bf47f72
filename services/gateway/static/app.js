// Minimal client for the gateway API: no framework, no external resources.
"use strict";

const LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
const state = { token: sessionStorage.getItem("token") };
const $ = (selector) => document.querySelector(selector);

function say(text, isError = false) {
  const message = $("#message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

async function api(path, options = {}) {
  const headers = options.headers || {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(`/api${path}`, { ...options, headers });
  if (response.status === 401 && state.token) setToken(null);
  if (!response.ok) {
    let detail = `HTTP ${response.status}`;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response.status === 204 ? null : response;
}

function setToken(token) {
  state.token = token;
  if (token) sessionStorage.setItem("token", token); else sessionStorage.removeItem("token");
  render();
}

async function render() {
  const loggedIn = Boolean(state.token);
  $("#auth").hidden = loggedIn;
  $("#predict").hidden = !loggedIn;
  $("#history").hidden = !loggedIn;
  $("#logout").hidden = !loggedIn;
  $("#who").textContent = "";
  if (loggedIn) {
    try {
      const user = await (await api("/user/profile")).json();
      $("#who").textContent = user.username;
      await loadHistory();
    } catch (error) { say(error.message, true); }
  }
}

function el(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function bars(probabilities, label) {
  const box = el("div");
  for (const name of LABELS) {
    const p = probabilities[name] || 0;
    const fill = el("div", { class: "fill", style: `width: ${(p * 100).toFixed(1)}%` });
    box.append(el("div", { class: name === label ? "bar top" : "bar" }, [
      el("span", { text: name }), el("div", {}, [fill]), el("span", { text: `${(p * 100).toFixed(1)}%` }),
    ]));
  }
  return box;
}

function showResult(result) {
  const box = $("#result");
  box.replaceChildren();
  box.append(el("h3", { text: `Result: ${result.label || "no label"}` }));
  if (result.probabilities) box.append(bars(result.probabilities, result.label));
  if (result.fusion_error) box.append(el("p", { class: "error", text: `Fusion failed: ${result.fusion_error.detail}` }));
  for (const [modality, outcome] of Object.entries(result.modalities)) {
    const part = el("div", { class: "modality" }, [el("h4", { text: `${modality}: ${outcome.label || outcome.status}` })]);
    if (outcome.error) part.append(el("p", { class: "error", text: outcome.error.detail }));
    if (outcome.message) part.append(el("p", { text: outcome.message }));
    if (outcome.probabilities && result.kind === "multimodal") part.append(bars(outcome.probabilities, outcome.label));
    box.append(part);
  }
}

async function loadHistory() {
  const page = await (await api("/predictions?limit=20")).json();
  const rows = $("#history-rows");
  rows.replaceChildren();
  for (const item of page.items) {
    const remove = el("button", { text: "Delete" });
    remove.addEventListener("click", async () => {
      try { await api(`/predictions/${item.id}`, { method: "DELETE" }); await loadHistory(); }
      catch (error) { say(error.message, true); }
    });
    const view = el("button", { text: "Show" });
    view.addEventListener("click", () => showResult(item));
    rows.append(el("tr", {}, [
      el("td", { text: new Date(item.created_at).toLocaleString() }),
      el("td", { text: item.kind }),
      el("td", { text: item.label || "-" }),
      el("td", { text: Object.keys(item.modalities).join(", ") }),
      el("td", {}, [view, remove]),
    ]));
  }
  say(`${page.total} prediction(s) in your history`);
}

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const body = new URLSearchParams(new FormData(event.target));
    const token = await (await api("/login", { method: "POST", body })).json();
    setToken(token.access_token);
    say("Logged in");
  } catch (error) { say(error.message, true); }
});

$("#register-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = Object.fromEntries(new FormData(event.target));
  try {
    await api("/register", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data),
    });
    const token = await (await api("/login", {
      method: "POST", body: new URLSearchParams({ username: data.username, password: data.password }),
    })).json();
    setToken(token.access_token);
    say("Registered and logged in");
  } catch (error) { say(error.message, true); }
});

$("#predict-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const mode = event.submitter ? event.submitter.dataset.mode : "multimodal";
  const text = form.text.value.trim();
  const audio = form.audio.files[0];
  const image = form.image.files[0];
  let request;
  if (mode === "text") {
    request = ["/predict/text", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text }),
    }];
  } else {
    const body = new FormData();
    if ((mode === "speech" || mode === "multimodal") && audio) body.append("audio", audio);
    if ((mode === "image" || mode === "multimodal") && image) body.append("image", image);
    if (mode === "multimodal" && text) body.append("text", text);
    request = [`/predict/${mode}`, { method: "POST", body }];
  }
  say("Predicting...");
  try {
    showResult(await (await api(...request)).json());
    await loadHistory();
  } catch (error) { say(error.message, true); }
});

$("#logout").addEventListener("click", async () => {
  try { await api("/logout", { method: "POST" }); } catch (_) { /* token may already be invalid */ }
  setToken(null);
  say("Logged out");
});

$("#refresh").addEventListener("click", () => loadHistory().catch((error) => say(error.message, true)));

$("#export").addEventListener("click", async (event) => {
  event.preventDefault();
  try {
    const blob = await (await api("/predictions/export.csv")).blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: "predictions.csv" });
    link.click();
    URL.revokeObjectURL(link.href);
  } catch (error) { say(error.message, true); }
});

render();
