// History: one filtered page at a time, Show (scroll + highlight), Delete (confirmed), CSV export.
import { api, apiJson } from "./api.js";
import { askConfirm } from "./confirm.js";
import { $, $$, el, setStatus, when, withBusy } from "./dom.js";
import { filterQuery } from "./filters.js";
import { explain } from "./messages.js";
import { highlightResult, showResult } from "./result.js";
import { onClear } from "./store.js";

export const PAGE_SIZE = 10;
const page = { offset: 0, total: 0 };
let onDeleted = () => {};
let loadToken = 0;

function inputsOf(item) {
  return Object.keys(item.modalities || {}).join(", ");
}

function row(item) {
  const show = el("button", { type: "button", class: "secondary", text: "Show", "aria-label": `Show prediction ${item.id}` });
  const remove = el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete prediction ${item.id}` });
  show.addEventListener("click", () => showItem(item.id, show));
  remove.addEventListener("click", () => deleteItem(item, remove));
  return el("tr", { "data-id": item.id }, [
    el("td", { "data-label": "When", text: when(item.created_at) }),
    el("td", { "data-label": "Kind", text: item.kind }),
    el("td", { "data-label": "Label", text: item.label || "none" }),
    el("td", { "data-label": "Inputs", text: inputsOf(item) }),
    el("td", { class: "row-actions" }, [el("div", { class: "actions" }, [show, remove])]),
  ]);
}

function renderPage(data) {
  page.total = data.total;
  $("#history-rows").replaceChildren(...data.items.map(row));
  $("#history-empty").hidden = data.items.length > 0;
  const first = data.total ? page.offset + 1 : 0;
  const last = page.offset + data.items.length;
  const pages = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
  const current = Math.floor(page.offset / PAGE_SIZE) + 1;
  $("#page-info").textContent = `Page ${current} of ${pages} (${first}–${last} of ${data.total})`;
  $("#page-prev").disabled = page.offset === 0;
  $("#page-next").disabled = last >= data.total;
}

/** Load the page at `offset` (default: the current one) with the current filters. */
export async function loadHistory(offset = page.offset) {
  const mine = ++loadToken;
  const status = $("#history-status");
  const query = filterQuery();
  query.set("limit", String(PAGE_SIZE));
  query.set("offset", String(Math.max(0, offset)));
  setStatus(status, "Loading…", "busy");
  try {
    const data = await apiJson("/predictions", { query });
    if (mine !== loadToken) return;
    if (!data.items.length && offset > 0 && data.total > 0) {
      await loadHistory(Math.max(0, Math.floor((data.total - 1) / PAGE_SIZE) * PAGE_SIZE));
      return;
    }
    page.offset = Math.max(0, offset);
    renderPage(data);
    setStatus(status, "");
  } catch (error) {
    if (mine === loadToken) setStatus(status, `History could not be loaded. ${explain(error, "history")}`, "error");
  }
}

async function showItem(id, button) {
  const status = $("#history-status");
  await withBusy({
    buttons: [button],
    status,
    busyText: "Opening…",
    explain,
    action: "history",
    work: async () => {
      const item = await apiJson(`/predictions/${id}`);
      await showResult(item);
      for (const tr of $$("#history-rows tr.highlight")) tr.classList.remove("highlight");
      $(`#history-rows tr[data-id="${id}"]`)?.classList.add("highlight");
      highlightResult();
    },
  });
}

async function deleteItem(item, button) {
  const label = item.label ? ` (${item.label})` : "";
  const ok = await askConfirm(`Delete the ${item.kind} prediction from ${when(item.created_at)}${label}? This cannot be undone.`);
  if (!ok) {
    button.focus();
    return;
  }
  const status = $("#history-status");
  const done = await withBusy({
    buttons: [button],
    status,
    busyText: "Deleting…",
    explain,
    action: "delete",
    work: async () => {
      await api(`/predictions/${item.id}`, { method: "DELETE" });
      const shown = $(`#result .result[data-id="${item.id}"]`);
      if (shown) $("#result").replaceChildren();
      return "Prediction deleted.";
    },
  });
  if (done) {
    const message = status.textContent;
    await loadHistory();
    setStatus(status, message, "ok");
    onDeleted();
  }
}

function filenameOf(response) {
  const match = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "");
  return match ? match[1] : "predictions.csv";
}

/** Download the filtered rows as CSV: fetched with the token in a header, saved from a Blob URL. */
async function exportCsv() {
  const button = $("#export-csv");
  await withBusy({
    buttons: [button],
    status: $("#history-status"),
    busyText: "Preparing the CSV…",
    explain,
    action: "export",
    work: async () => {
      const response = await api("/predictions/export.csv", { query: filterQuery() });
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: filenameOf(response) });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      return "CSV downloaded.";
    },
  });
}

function clearHistory() {
  loadToken += 1;
  page.offset = 0;
  page.total = 0;
  $("#history-rows").replaceChildren();
  $("#history-empty").hidden = true;
  $("#page-info").textContent = "";
}

export function initHistory({ afterDelete }) {
  onDeleted = afterDelete;
  $("#page-prev").addEventListener("click", () => loadHistory(Math.max(0, page.offset - PAGE_SIZE)));
  $("#page-next").addEventListener("click", () => loadHistory(page.offset + PAGE_SIZE));
  $("#history-refresh").addEventListener("click", () => loadHistory());
  $("#export-csv").addEventListener("click", exportCsv);
  onClear(clearHistory);
}
