// Who is logged in, and everything that must be forgotten at logout.
// The token lives in memory and sessionStorage (this tab only), never in a URL.

const TOKEN_KEY = "emotion.token";
const clearers = new Set();
let token = sessionStorage.getItem(TOKEN_KEY);

export function getToken() {
  return token;
}

export function setToken(value) {
  token = value || null;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Register a function that wipes one part of the page (results, history, charts, previews...). */
export function onClear(fn) {
  clearers.add(fn);
}

/** Forget the user: token, storage, and every registered part of the page. */
export function clearEverything() {
  setToken(null);
  sessionStorage.clear();
  for (const fn of clearers) {
    try {
      fn();
    } catch (error) {
      console.error("clearing failed", error);
    }
  }
}
