// The comparison page: every loaded model scores the same text; one column per model, a bar per label.
// Text from users and models is only ever set with textContent, so a comment cannot inject markup.
"use strict";

const HISTORY_KEY = "modlab.history";
const HISTORY_MAX = 50;
const state = { models: [], hues: new Map(), key: sessionStorage.getItem("modlab.key") || "", history: [] };
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function hueOf(label) {
  // One colour per label name across models; golden-angle steps keep 18 categories apart.
  if (!state.hues.has(label)) state.hues.set(label, Math.round((state.hues.size * 137.508 + 200) % 360));
  return state.hues.get(label);
}

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.key) headers.Authorization = "Bearer " + state.key;
  const response = await fetch(path, body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
  const payload = await response.json().catch(() => ({}));
  if (response.status === 401) $("keybox").hidden = false;
  if (!response.ok) throw new Error((payload.error && payload.error.message) || response.status + " " + response.statusText);
  return payload;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function loadModels() {
  try {
    const listed = await api("/v1/models");
    state.models = listed.data;
    state.models.forEach((m) => m.labels.forEach(hueOf));
    const names = state.models.map((m) => m.id).join(", ");
    $("status").textContent = state.models.length + (state.models.length === 1 ? " model: " : " models: ") + names;
    showError("");
  } catch (err) {
    $("status").textContent = "no models";
    showError(err.message);
  }
}

function metricLine(model) {
  const auc = model.metrics && (model.metrics["test/auroc_macro"] ?? model.metrics["val/auroc_macro"]);
  const parts = [model.backend + " " + model.precision, model.labels.length + " labels"];
  if (typeof auc === "number") parts.push("macro ROC-AUC " + auc.toFixed(3));
  return parts.join(" · ");
}

function column(model, found) {
  const card = el("article", "model");
  card.dataset.model = model.id;
  const verdict = el("span", "verdict");
  const title = el("h3", null, model.id);
  card.append(verdict, title, el("p", "meta", metricLine(model)));
  if (!found) {
    card.append(el("p", "failed", "no result"));
    return card;
  }
  const result = found.results[0];
  verdict.textContent = result.flagged ? "flagged" : "clear";
  card.classList.toggle("flagged", result.flagged);
  card.querySelector(".meta").textContent += " · " + found.latency_ms.toFixed(1) + " ms";
  const bars = el("ul", "bars");
  for (const label of model.labels) {
    const score = result.category_scores[label];
    const flagged = result.categories[label];
    const row = el("li", "bar" + (flagged ? " flagged" : ""));
    row.dataset.label = label;
    row.style.setProperty("--hue", hueOf(label));
    row.title = label + ": " + score.toFixed(4) + " (threshold " + model.thresholds[label].toFixed(3) + ")";
    const track = el("span", "track");
    const fill = el("span", "fill");
    fill.style.width = (100 * score).toFixed(2) + "%";
    const mark = el("span", "threshold");
    mark.style.left = (100 * model.thresholds[label]).toFixed(2) + "%";
    track.append(fill, mark);
    row.append(el("span", "name", label), track, el("span", "score", score.toFixed(3)));
    bars.append(row);
  }
  card.append(bars);
  return card;
}

function render(text, compared) {
  $("current-text").textContent = text;
  const byName = new Map(compared.models.map((m) => [m.model, m]));
  $("columns").replaceChildren(...state.models.map((m) => column(m, byName.get(m.id))));
  $("result").hidden = false;
}

function summary(compared) {
  const flagged = compared.models.filter((m) => m.results[0].flagged).map((m) => {
    const labels = Object.keys(m.results[0].categories).filter((l) => m.results[0].categories[l]);
    return m.model + " (" + labels.join(", ") + ")";
  });
  return flagged.length ? "flagged by " + flagged.join("; ") : "no model flags it";
}

function saveHistory() {
  try { localStorage.setItem(HISTORY_KEY, JSON.stringify(state.history)); } catch (_) { /* private mode */ }
}

function renderHistory() {
  const list = $("history-list");
  list.replaceChildren(...state.history.map((entry, index) => {
    const item = el("li", "entry");
    const rerun = el("button", "quiet rerun", "Re-run");
    rerun.type = "button";
    rerun.addEventListener("click", () => score(entry.text, index));
    item.append(el("span", "text", entry.text), el("span", "summary", entry.time + " · " + entry.summary), rerun);
    return item;
  }));
  $("history-empty").hidden = state.history.length > 0;
}

async function score(text, fromHistory) {
  if (!text.trim()) return;
  $("submit").disabled = true;
  try {
    const compared = await api("/v1/compare", { input: text, models: null });
    render(text, compared);
    if (fromHistory !== undefined) state.history.splice(fromHistory, 1);
    state.history.unshift({ text, summary: summary(compared), time: new Date().toLocaleTimeString() });
    state.history.length = Math.min(state.history.length, HISTORY_MAX);
    saveHistory();
    renderHistory();
    showError("");
  } catch (err) {
    showError(err.message);
  } finally {
    $("submit").disabled = false;
  }
}

function init() {
  try { state.history = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); } catch (_) { state.history = []; }
  renderHistory();
  $("ask").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value;
    score(text).then(() => { if ($("error").hidden) $("text").value = ""; });
  });
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("ask").requestSubmit();
    }
  });
  $("savekey").addEventListener("click", () => {
    state.key = $("apikey").value.trim();
    sessionStorage.setItem("modlab.key", state.key);
    $("keybox").hidden = true;
    loadModels();
  });
  $("clear-history").addEventListener("click", () => { state.history = []; saveHistory(); renderHistory(); });
  loadModels();
  $("text").focus();
}

document.addEventListener("DOMContentLoaded", init);
