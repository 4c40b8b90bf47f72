// The filter form shared by the statistics charts, the history table and the CSV export.
import { $, el, setStatus } from "./dom.js";
import { EMOTIONS } from "./labels.js";

/** The current filters as query parameters (modality, emotion, from, to). */
export function filterQuery() {
  const query = new URLSearchParams();
  for (const name of ["modality", "emotion", "from", "to"]) {
    const value = $(`#filters [name="${name}"]`).value;
    if (value) query.set(name, value);
  }
  return query;
}

/** `onChange()` reloads everything that depends on the filters. */
export function initFilters(onChange) {
  const emotion = $("#filter-emotion");
  for (const name of EMOTIONS) emotion.append(el("option", { value: name, text: name }));
  const form = $("#filters");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const from = $("#filter-from").value;
    const to = $("#filter-to").value;
    if (from && to && from > to) {
      setStatus($("#filters-status"), "The 'From' date must not be after the 'To' date.", "error");
      $("#filter-from").focus();
      return;
    }
    onChange();
  });
  // "reset" fires before the fields are cleared: reload once they are.
  form.addEventListener("reset", () => setTimeout(onChange, 0));
}
