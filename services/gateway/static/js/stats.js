// Statistics: /api/statistics drawn as three charts, with a text summary of each.
import { apiJson } from "./api.js";
import { barChart, destroy, stackedDays } from "./charts.js";
import { $, setStatus } from "./dom.js";
import { EMOTIONS } from "./labels.js";
import { explain } from "./messages.js";
import { onClear } from "./store.js";

const CANVASES = ["#chart-emotions", "#chart-days", "#chart-modalities"];

function listText(counts) {
  const parts = Object.entries(counts).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
  return parts.length ? parts.join(", ") : "nothing yet";
}

export function drawStatistics(stats) {
  const emotions = [...EMOTIONS, ...(stats.by_emotion.none ? ["none"] : [])];
  const byEmotion = Object.fromEntries(emotions.map((e) => [e, stats.by_emotion[e] || 0]));
  barChart($("#chart-emotions"), emotions, emotions.map((e) => byEmotion[e]), { horizontal: true });
  $("#chart-emotions-text").textContent = `By emotion: ${listText(byEmotion)}.`;

  stackedDays($("#chart-days"), stats.per_day);
  $("#chart-days-text").textContent = stats.per_day.length
    ? `Per day: ${stats.per_day.map((d) => `${d.date} ${d.total}`).join(", ")}.`
    : "Per day: nothing yet.";

  const modalities = Object.keys(stats.by_modality);
  const palette = { text: "#0b57d0", speech: "#7b1fa2", image: "#00796b", video: "#b26a00" };
  barChart($("#chart-modalities"), modalities, modalities.map((m) => stats.by_modality[m]), { colors: palette });
  const kinds = stats.by_kind || {};
  $("#chart-modalities-text").textContent =
    `Inputs including each modality: ${listText(stats.by_modality)}. Requests: ${listText(kinds)}.`;
  const noun = stats.total === 1 ? "prediction matches" : "predictions match";
  $("#stats-total").textContent = `${stats.total} ${noun} the filters.`;
}

export async function loadStatistics(query) {
  const status = $("#filters-status");
  try {
    drawStatistics(await apiJson("/statistics", { query }));
    if (status.classList.contains("error")) setStatus(status, "");
  } catch (error) {
    setStatus(status, `Statistics could not be loaded. ${explain(error, "statistics")}`, "error");
  }
}

function clearStatistics() {
  for (const selector of CANVASES) destroy($(selector));
  for (const id of ["#chart-emotions-text", "#chart-days-text", "#chart-modalities-text", "#stats-total"]) {
    $(id).textContent = "";
  }
}

onClear(clearStatistics);
