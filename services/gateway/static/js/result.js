// The result panel: fused and per-modality bars, model/version/latency, faces, timelines, empty states.
import { bars } from "./bars.js";
import { timeline } from "./charts.js";
import { $, el, when } from "./dom.js";
import { facesFigure } from "./faces.js";
import { explainModality } from "./messages.js";
import { onClear } from "./store.js";

const section = () => $("#result-section");
const box = () => $("#result");

let pendingCharts = [];

const KIND_NAMES = { text: "Text", speech: "Speech", image: "Image", video: "Video", multimodal: "Fused" };

function ms(value) {
  return value === undefined || value === null ? "" : `${Math.round(value)} ms`;
}

function modelLine(model, latency) {
  const parts = [];
  if (model) parts.push(`model ${model.name} ${model.version}`);
  if (latency !== undefined && latency !== null) parts.push(ms(latency));
  return el("p", { class: "meta", text: parts.join(" · ") });
}

/** [{start, end, probabilities, label}] from a speech/video timeline, whatever its field names. */
function windowsOf(list) {
  return (list || []).map((w, i) => {
    const start = w.start ?? w.start_s ?? w.t ?? w.time ?? i;
    return { start, end: w.end ?? w.end_s ?? start, label: w.label, probabilities: w.probabilities || {} };
  });
}

function timelineFigure(title, windows) {
  const canvas = el("canvas", { role: "img", "aria-label": `${title}: probability of each emotion over time` });
  const figure = el("figure", { class: "timeline" }, [
    el("figcaption", { text: title }),
    el("div", { class: "chart-box" }, [canvas]),
  ]);
  const summary = windows
    .map((w) => `${Number(w.start).toFixed(1)}–${Number(w.end).toFixed(1)} s: ${w.label || "?"}`)
    .join("; ");
  figure.append(el("p", { class: "chart-text", text: `${windows.length} window(s). ${summary}` }));
  // Chart.js sizes the chart from its container: draw once the card is in the document.
  pendingCharts.push(() => timeline(canvas, windows));
  return figure;
}

async function modalityCard(name, outcome, context) {
  const card = el("article", { class: "modality", "data-modality": name });
  const title = outcome.label ? `${KIND_NAMES[name] || name}: ${outcome.label}` : KIND_NAMES[name] || name;
  card.append(el("h4", { text: title }));
  card.append(modelLine(outcome.model, outcome.latency_ms));
  if (outcome.status === "error") {
    card.append(el("p", { class: "state error", text: explainModality(name, outcome.error) }));
    return card;
  }
  const details = outcome.details || {};
  if (!outcome.probabilities) {
    const text = name === "image" ? "No face found in the image." : outcome.message || "No result.";
    card.append(el("p", { class: "state no-result", text }));
  } else {
    card.append(bars(outcome.probabilities, outcome.label, `${name} probabilities`));
  }
  if (name === "image" && context.image && Array.isArray(details.faces)) {
    try {
      card.append(await facesFigure(context.image, details.faces, { width: details.width, height: details.height }));
    } catch {
      card.append(el("p", { class: "meta", text: "The image could not be shown." }));
    }
  }
  if (name === "speech" && Array.isArray(details.segments)) {
    if (details.segments.length) card.append(timelineFigure("Speech timeline", windowsOf(details.segments)));
    else card.append(el("p", { class: "state no-result", text: "No speech found in the recording." }));
  }
  if (Array.isArray(details.timeline) && details.timeline.length) {
    card.append(timelineFigure(`${KIND_NAMES[name] || name} timeline`, windowsOf(details.timeline)));
  }
  if (typeof details.transcript === "string" && details.transcript) {
    card.append(el("p", { class: "transcript" }, [el("strong", { text: "Transcript: " }), details.transcript]));
  }
  return card;
}

/** Show a prediction. `context.image` is the image File just sent (to draw the face boxes on). */
export async function showResult(result, context = {}) {
  pendingCharts = [];
  const card = el("article", { class: "card result", "data-id": result.id });
  const headline = result.label ? result.label : "no label";
  card.append(
    el("div", { class: "result-head" }, [
      el("span", { class: "kind", text: `${KIND_NAMES[result.kind] || result.kind} prediction` }),
      el("span", { class: "label", text: headline }),
      el("span", { class: "meta", text: `${when(result.created_at)} · total ${ms(result.latencies_ms?.total)}` }),
    ]),
  );
  if (result.fused) {
    card.append(el("h3", { text: `Fused: ${result.fused.label}` }));
    card.append(modelLine(result.fused.model, result.latencies_ms?.fusion));
    card.append(bars(result.fused.probabilities, result.fused.label, "fused probabilities"));
    card.append(el("p", { class: "meta", text: `From: ${result.fused.modalities.join(", ")}` }));
  } else if (result.fusion_error) {
    card.append(el("p", { class: "state error", text: `Fusion failed: ${explainModality("fusion", result.fusion_error)}` }));
  }
  const modalities = el("div", { class: "modalities" });
  for (const [name, outcome] of Object.entries(result.modalities || {})) {
    modalities.append(await modalityCard(name, outcome, context));
  }
  card.append(modalities);
  if (Array.isArray(result.timeline) && result.timeline.length) {
    card.append(timelineFigure("Video timeline", windowsOf(result.timeline)));
  }
  if (!result.label && !result.fused && result.kind !== "multimodal") {
    const only = Object.values(result.modalities || {})[0];
    if (only && only.status === "ok" && !only.probabilities) {
      card.querySelector(".result-head .label").textContent = "no face found";
    }
  }
  section().hidden = false;
  box().replaceChildren(card);
  const draws = pendingCharts;
  pendingCharts = [];
  for (const drawChart of draws) drawChart();
  return card;
}

/** Scroll to the result and flash it (used by the history's Show). */
export function highlightResult() {
  const card = box().firstElementChild;
  if (!card) return;
  card.classList.remove("highlight");
  void card.offsetWidth; // restart the animation
  card.classList.add("highlight");
  card.scrollIntoView({ behavior: "smooth", block: "start" });
  box().focus({ preventScroll: true });
}

export function clearResult() {
  box().replaceChildren();
  section().hidden = true;
}

onClear(clearResult);
