// API keys: create (the secret shown once, with Copy), list, revoke.
import { api, apiJson } from "./api.js";
import { askConfirm } from "./confirm.js";
import { $, $$, el, setStatus, when, withBusy } from "./dom.js";
import { explain } from "./messages.js";
import { bodyEnum, loadOpenApi, operation } from "./openapi.js";
import { onClear } from "./store.js";

function keyRow(key) {
  const revoked = Boolean(key.revoked_at);
  const cells = [
    el("td", { "data-label": "Name", text: key.name }),
    el("td", { "data-label": "Prefix" }, [el("code", { text: key.prefix })]),
    el("td", { "data-label": "Created", text: when(key.created_at) }),
    el("td", { "data-label": "Last used", text: key.last_used_at ? when(key.last_used_at) : "never" }),
    el("td", {
      "data-label": "State",
      text: (revoked ? "revoked" : "active") + (key.scopes ? ` (${key.scopes.join(", ")})` : ""),
    }),
  ];
  const actions = el("td", { class: "row-actions" });
  if (!revoked) {
    const button = el("button", { type: "button", class: "danger", text: "Revoke", "aria-label": `Revoke key ${key.name}` });
    button.addEventListener("click", () => revoke(key, button));
    actions.append(button);
  }
  return el("tr", { "data-id": key.id }, [...cells, actions]);
}

export async function loadKeys() {
  const status = $("#keys-status");
  try {
    const keys = await apiJson("/keys");
    $("#keys-rows").replaceChildren(...keys.map(keyRow));
    $("#keys-empty").hidden = keys.length > 0;
    if (status.classList.contains("error")) setStatus(status, "");
  } catch (error) {
    setStatus(status, `Keys could not be loaded. ${explain(error, "keys")}`, "error");
  }
}

async function revoke(key, button) {
  if (!(await askConfirm(`Revoke the key "${key.name}" (${key.prefix}…)? Clients using it will be refused.`, "Revoke"))) {
    button.focus();
    return;
  }
  const status = $("#keys-status");
  const ok = await withBusy({
    buttons: [button],
    status,
    busyText: "Revoking…",
    explain,
    action: "keys",
    work: async () => {
      await api(`/keys/${key.id}`, { method: "DELETE" });
      return `Key "${key.name}" revoked.`;
    },
  });
  if (ok) {
    const message = status.textContent;
    await loadKeys();
    setStatus(status, message, "ok");
  }
}

/** Forget the secret shown after creating a key (Done, leaving the page, logging out). */
export function hideNewKey() {
  $("#new-key-value").value = "";
  $("#new-key").hidden = true;
  setStatus($("#new-key-status"), "");
}

async function copyKey() {
  const input = $("#new-key-value");
  const status = $("#new-key-status");
  try {
    await navigator.clipboard.writeText(input.value);
    setStatus(status, "Copied to the clipboard.", "ok");
  } catch {
    input.focus();
    input.select();
    setStatus(status, "Copying is not allowed here: the key is selected, press Ctrl+C (⌘C on a Mac).");
  }
}

/** Scope checkboxes, when this gateway's API keys have scopes. */
async function enableScopes() {
  const spec = await loadOpenApi();
  const scopes = bodyEnum(spec, operation(spec, "/api/keys"), "scopes");
  const fieldset = $("#key-scopes");
  if (!scopes || !scopes.length) {
    fieldset.hidden = true;
    return;
  }
  for (const node of $$("label", fieldset)) node.remove();
  for (const scope of scopes) {
    const id = `scope-${scope.replace(/[^a-z0-9]/gi, "-")}`;
    // Least privilege by default: write scopes only when ticked.
    const checked = !scope.endsWith(":write");
    fieldset.append(el("label", { for: id }, [el("input", { type: "checkbox", id, name: "scopes", value: scope, checked }), scope]));
  }
  fieldset.hidden = false;
}

export function initKeys() {
  $("#key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#key-name").value.trim();
    const status = $("#key-status");
    if (!name) {
      setStatus(status, "Give the key a name first.", "error");
      $("#key-name").focus();
      return;
    }
    const body = { name };
    if (!$("#key-scopes").hidden) {
      body.scopes = $$("#key-scopes input:checked").map((i) => i.value);
      if (!body.scopes.length) {
        setStatus(status, "Tick at least one thing the key may do.", "error");
        return;
      }
    }
    await withBusy({
      buttons: [$("#key-create")],
      status,
      busyText: "Creating…",
      explain,
      action: "keys",
      work: async () => {
        const created = await apiJson("/keys", { method: "POST", json: body });
        $("#new-key-value").value = created.key;
        $("#new-key").hidden = false;
        $("#key-name").value = "";
        $("#new-key-copy").focus();
        await loadKeys();
        return `Key "${created.name}" created.`;
      },
    });
  });
  $("#new-key-copy").addEventListener("click", copyKey);
  $("#new-key-done").addEventListener("click", () => {
    hideNewKey();
    $("#key-name").focus();
  });
  onClear(() => {
    hideNewKey();
    $("#keys-rows").replaceChildren();
    $("#keys-empty").hidden = true;
  });
  return enableScopes;
}
