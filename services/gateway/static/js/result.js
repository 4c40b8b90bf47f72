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

/** [{start, end, probabilities, label, modalities}] from a speech or video timeline, whatever its field names. */
function windowsOf(list) {
  return (list || []).map((w, i) => {
    const start = w.start ?? w.start_s ?? w.t ?? w.time ?? i;
    return {
      start,
      end: w.end ?? w.end_s ?? start,
      label: w.label,
      probabilities: w.probabilities || null,
      modalities: w.modalities || {},
    };
  });
}

function windowText(w) {
  const span = `${Number(w.start).toFixed(1)}–${Number(w.end).toFixed(1)} s: ${w.label || "no result"}`;
  const parts = Object.entries(w.modalities).map(([name, m]) => `${name} ${m.label}`);
  return parts.length ? `${span} (${parts.join(", ")})` : span;
}

function timelineFigure(title, windows, note = "") {
  const figure = el("figure", { class: "timeline" }, [el("figcaption", { text: title })]);
  // Stored history keeps the labels only: draw the chart when there are probabilities to draw.
  if (windows.some((w) => w.probabilities)) {
    const canvas = el("canvas", { role: "img", "aria-label": `${title}: probability of each emotion over time` });
    figure.append(el("div", { class: "chart-box" }, [canvas]));
    // Chart.js sizes the chart from its container: draw once the card is in the document.
    pendingCharts.push(() => timeline(canvas, windows));
  }
  const summary = `${windows.length} window(s). ${windows.map(windowText).join("; ")}`;
  figure.append(el("p", { class: "chart-text", text: note ? `${summary}. ${note}` : summary }));
  return figure;
}

function transcriptBlock(transcript) {
  const block = el("div", { class: "transcript" }, [
    el("h4", { text: transcript.language ? `Transcript (${transcript.language})` : "Transcript" }),
    el("p", { text: transcript.text || "(no words recognised)" }),
  ]);
  if (transcript.segments?.length) {
    const list = el("ol", { class: "segments" });
    for (const seg of transcript.segments) {
      const label = seg.label ? ` — ${seg.label}` : "";
      list.append(el("li", { text: `${Number(seg.start).toFixed(1)}–${Number(seg.end).toFixed(1)} s: ${seg.text}${label}` }));
    }
    block.append(list);
  }
  return block;
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
  if (result.transcript) card.append(transcriptBlock(result.transcript));
  const video = result.timeline;
  const windows = Array.isArray(video) ? video : video?.windows;
  if (windows?.length) {
    const missing = video.missing?.length ? `Missing: ${video.missing.join(", ")}` : "";
    card.append(timelineFigure("Video timeline", windowsOf(windows), missing));
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
