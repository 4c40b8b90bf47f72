// Entry point: wires the views (log in, dashboard, API keys) together.
import { apiJson } from "./api.js";
import { $ } from "./dom.js";
import { filterQuery, initFilters } from "./filters.js";
import { initHistory, loadHistory } from "./history.js";
import { hideNewKey, initKeys, loadKeys } from "./keys.js";
import { enableOptionalInputs, initPredict } from "./predict.js";
import { enableLogoutEverywhere, initSession } from "./session.js";
import { loadStatistics } from "./stats.js";
import { getToken } from "./store.js";

const VIEWS = { auth: "#auth-view", dashboard: "#dashboard-view", keys: "#keys-view" };

function showView(name) {
  for (const [view, selector] of Object.entries(VIEWS)) $(selector).hidden = view !== name;
  const signedIn = name !== "auth";
  for (const id of ["#nav-dashboard", "#nav-keys", "#logout"]) $(id).hidden = !signedIn;
  if (!signedIn) $("#logout-all").hidden = true;
  $("#nav-dashboard").toggleAttribute("aria-current", name === "dashboard");
  $("#nav-keys").toggleAttribute("aria-current", name === "keys");
  if (name === "dashboard") $("#nav-dashboard").setAttribute("aria-current", "page");
  if (name === "keys") $("#nav-keys").setAttribute("aria-current", "page");
  else hideNewKey(); // the new key's secret is shown once: not again after leaving the page
}

/** Statistics and the first history page, with the current filters. */
function refresh() {
  if (!getToken()) return;
  loadStatistics(filterQuery());
  loadHistory(0);
}

let enableScopes = async () => {};

async function enter() {
  showView("dashboard");
  try {
    const user = await apiJson("/user/profile");
    $("#who").textContent = `Signed in as ${user.username}`;
  } catch {
    return; // a 401 already sent us back to the login view
  }
  refresh();
  enableOptionalInputs();
  enableScopes();
  enableLogoutEverywhere();
}

function boot() {
  initPredict();
  initFilters(refresh);
  initHistory({ afterDelete: () => loadStatistics(filterQuery()) });
  enableScopes = initKeys();
  initSession({ onEnter: enter, onLeave: () => showView("auth") });
  document.addEventListener("predictions-changed", refresh);
  $("#nav-dashboard").addEventListener("click", () => showView("dashboard"));
  $("#nav-keys").addEventListener("click", () => {
    showView("keys");
    loadKeys();
  });
  if (getToken()) enter();
  else showView("auth");
}

boot();
