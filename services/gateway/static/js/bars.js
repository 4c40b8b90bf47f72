// Seven probability bars, the top one emphasised; widths set through CSSOM (CSP-safe).
import { el, percent } from "./dom.js";
import { EMOTIONS } from "./labels.js";

export function bars(probabilities, label, caption = "Probabilities") {
  const list = el("div", { class: "bars", role: "list", "aria-label": caption });
  for (const name of EMOTIONS) {
    const p = probabilities[name] || 0;
    const fill = el("span", { class: "fill" });
    fill.style.width = `${(p * 100).toFixed(1)}%`;
    list.append(
      el("div", { class: name === label ? "bar best" : "bar", role: "listitem", "aria-label": `${name} ${percent(p)}` }, [
        el("span", { class: "name", text: name, "aria-hidden": "true" }),
        el("span", { class: "track", "aria-hidden": "true" }, [fill]),
        el("span", { class: "pct", text: percent(p), "aria-hidden": "true" }),
      ]),
    );
  }
  return list;
}
