// Chart.js (vendored, /static/vendor/chart.js) wrappers: one place that knows its options.
import { COLORS, EMOTIONS } from "./labels.js";

const Chart = () => window.Chart;

function base(extra = {}) {
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    plugins: { legend: { display: false } },
    ...extra,
  };
}

/** Draw (or redraw) a chart on a canvas, replacing the one already there. */
export function draw(canvas, config) {
  const existing = Chart().getChart(canvas);
  if (existing) existing.destroy();
  return new (Chart())(canvas, config);
}

export function destroy(canvas) {
  const existing = canvas && Chart() ? Chart().getChart(canvas) : null;
  if (existing) existing.destroy();
}

/** Bars with one colour per category. */
export function barChart(canvas, labels, values, { colors, horizontal = false } = {}) {
  return draw(canvas, {
    type: "bar",
    data: {
      labels,
      datasets: [{ data: values, backgroundColor: labels.map((l) => (colors || COLORS)[l] || "#0b57d0") }],
    },
    options: base({
      indexAxis: horizontal ? "y" : "x",
      scales: { x: { beginAtZero: true, ticks: { precision: 0 } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
    }),
  });
}

/** Per-day counts stacked by emotion. `days` is [{date, by_emotion}] */
export function stackedDays(canvas, days) {
  const present = EMOTIONS.filter((e) => days.some((d) => d.by_emotion[e]));
  if (days.some((d) => d.by_emotion.none)) present.push("none");
  return draw(canvas, {
    type: "bar",
    data: {
      labels: days.map((d) => d.date),
      datasets: present.map((emotion) => ({
        label: emotion,
        data: days.map((d) => d.by_emotion[emotion] || 0),
        backgroundColor: COLORS[emotion],
      })),
    },
    options: base({
      plugins: { legend: { display: true, position: "bottom" } },
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
    }),
  });
}

/**
 * Probabilities over time: one line per emotion, one point per window.
 * `windows` is [{start, end, probabilities}] in seconds.
 */
export function timeline(canvas, windows) {
  const mid = (w) => Number((((w.start ?? 0) + (w.end ?? w.start ?? 0)) / 2).toFixed(2));
  return draw(canvas, {
    type: "line",
    data: {
      datasets: EMOTIONS.map((emotion) => ({
        label: emotion,
        // A window without a result is a gap, not a zero.
        data: windows.map((w) => ({ x: mid(w), y: w.probabilities ? w.probabilities[emotion] || 0 : null })),
        borderColor: COLORS[emotion],
        backgroundColor: COLORS[emotion],
        pointRadius: 3,
        tension: 0.2,
      })),
    },
    options: base({
      parsing: true,
      plugins: { legend: { display: true, position: "bottom", labels: { boxWidth: 12 } } },
      scales: {
        x: { type: "linear", title: { display: true, text: "seconds" } },
        y: { min: 0, max: 1, title: { display: true, text: "probability" } },
      },
    }),
  });
}
