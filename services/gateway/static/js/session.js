// Register, log in, log out. Logging out forgets everything the page showed.
import { api, apiJson, setUnauthorizedHandler } from "./api.js";
import { $, $$, clearStatuses, setStatus, withBusy } from "./dom.js";
import { explain } from "./messages.js";
import { clearEverything, getToken, onClear, setToken } from "./store.js";

async function logIn(username, password) {
  const form = new URLSearchParams({ username, password, grant_type: "password" });
  const token = await apiJson("/login", { method: "POST", form, auth: false });
  setToken(token.access_token);
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

  $("#logout").addEventListener("click", async () => {
    const button = $("#logout");
    button.disabled = true;
    try {
      if (getToken()) await api("/logout", { method: "POST" });
    } catch {
      // The token is forgotten either way; a failed revoke only means it expires on its own.
    } finally {
      button.disabled = false;
    }
    clearEverything();
    onLeave();
    setStatus($("#login-status"), "You are logged out.", "ok");
    $("#login-username").focus();
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
