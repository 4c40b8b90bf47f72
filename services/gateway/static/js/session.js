// Register, log in, log out. Logging out forgets everything the page showed.
import { api, apiJson, setUnauthorizedHandler } from "./api.js";
import { $, $$, clearStatuses, setStatus, withBusy } from "./dom.js";
import { askConfirm } from "./confirm.js";
import { explain } from "./messages.js";
import { loadOpenApi, operation } from "./openapi.js";
import { clearEverything, getToken, onClear, setToken } from "./store.js";

async function logIn(username, password) {
  const form = new URLSearchParams({ username, password, grant_type: "password" });
  const token = await apiJson("/login", { method: "POST", form, auth: false });
  setToken(token.access_token);
}

/** Offer "Log out everywhere" where the gateway has it. */
export async function enableLogoutEverywhere() {
  const spec = await loadOpenApi();
  $("#logout-all").hidden = !getToken() || !operation(spec, "/api/logout/all");
}

/** Wire the forms; `onEnter()` opens the dashboard, `onLeave()` shows the login view. */
export function initSession({ onEnter, onLeave }) {
  $("#login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const ok = await withBusy({
      buttons: [$("#login-button")],
      status: $("#login-status"),
      busyText: "Logging in…",
      explain,
      action: "login",
      work: () => logIn(form.username.value.trim(), form.password.value),
    });
    if (ok) {
      form.reset();
      await onEnter();
    } else {
      form.password.select();
    }
  });

  $("#register-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const username = form.username.value.trim();
    const password = form.password.value;
    const ok = await withBusy({
      buttons: [$("#register-button")],
      status: $("#register-status"),
      busyText: "Creating your account…",
      explain,
      action: "register",
      work: async () => {
        await api("/register", { method: "POST", json: { username, email: form.email.value.trim(), password }, auth: false });
        await logIn(username, password);
      },
    });
    if (ok) {
      form.reset();
      await onEnter();
    }
  });

  async function logOut(button, path, message) {
    button.disabled = true;
    try {
      if (getToken()) await api(path, { method: "POST" });
    } catch {
      // The token is forgotten either way; a failed revoke only means it expires on its own.
    } finally {
      button.disabled = false;
    }
    clearEverything();
    onLeave();
    setStatus($("#login-status"), message, "ok");
    $("#login-username").focus();
  }

  $("#logout").addEventListener("click", () => logOut($("#logout"), "/logout", "You are logged out."));
  $("#logout-all").addEventListener("click", async () => {
    const sure = await askConfirm("Log out on every device and browser where you are logged in?", "Log out everywhere");
    if (sure) await logOut($("#logout-all"), "/logout/all", "You are logged out everywhere.");
  });

  setUnauthorizedHandler(() => {
    clearEverything();
    onLeave();
    setStatus($("#login-status"), "Your session has ended. Please log in again.", "error");
  });

  onClear(() => {
    for (const form of $$("form")) form.reset();
    clearStatuses();
    $("#who").textContent = "";
  });
}
