// Small DOM helpers: element builder, status lines next to controls, busy buttons.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** Build an element; `text` sets textContent, `on*` functions become listeners, the rest are attributes. */
export function el(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** Show a message in a status line: kind is "", "busy", "ok" or "error". */
export function setStatus(node, text, kind = "") {
  if (!node) return;
  node.textContent = text || "";
  node.className = kind ? `status ${kind}` : "status";
  node.setAttribute("role", kind === "error" ? "alert" : "status");
}

export function clearStatuses(root = document) {
  for (const node of $$(".status", root)) setStatus(node, "");
}

/** Local date and time of an ISO timestamp, short. */
export function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function percent(value) {
  return `${((value || 0) * 100).toFixed(1)}%`;
}

/**
 * Run `work` with `buttons` disabled and progress in `status`; errors go to the same status line
 * in plain words (explain(error, action)). `work` may return a success message.
 */
export async function withBusy({ buttons, status, busyText, explain, action, work }) {
  for (const button of buttons) button.disabled = true;
  for (const button of buttons) button.setAttribute("aria-busy", "true");
  setStatus(status, busyText, "busy");
  try {
    const done = await work();
    setStatus(status, typeof done === "string" ? done : "", typeof done === "string" ? "ok" : "");
    return true;
  } catch (error) {
    const message = explain(error, action);
    setStatus(status, message, message ? "error" : "");
    if (!error || error.status === undefined) console.error(error);
    return false;
  } finally {
    for (const button of buttons) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }
}
