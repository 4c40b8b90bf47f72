// fetch wrapper for the gateway's /api: adds the bearer token and turns error bodies into ApiError.
import { getToken } from "./store.js";

export class ApiError extends Error {
  constructor({ status, code, detail, retryAfter = null, errors = null }) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
    this.detail = detail || "";
    this.retryAfter = retryAfter;
    this.errors = errors;
  }
}

let onUnauthorized = () => {};

/** Called when a logged-in request answers 401 (token expired or revoked). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/**
 * Call the API. `json` sends a JSON body, `form` a FormData or URLSearchParams body.
 * Returns the Response (204 -> null); throws ApiError for non-2xx and network failures.
 */
export async function api(path, { method = "GET", json, form, query, signal, auth = true } = {}) {
  const headers = {};
  const token = getToken();
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const qs = query && query.toString() ? `?${query}` : "";
  let response;
  try {
    response = await fetch(`/api${path}${qs}`, { method, headers, body, signal, cache: "no-store" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError({ status: 0, code: "network", detail: error.message });
  }
  if (response.ok) return response.status === 204 ? null : response;
  let payload = {};
  try {
    payload = await response.json();
  } catch {
    payload = {};
  }
  const retry = response.headers.get("Retry-After");
  const error = new ApiError({
    status: response.status,
    code: payload.code,
    detail: typeof payload.detail === "string" ? payload.detail : "",
    retryAfter: retry ? Number.parseInt(retry, 10) : null,
    errors: payload.errors || null,
  });
  if (response.status === 401 && auth && token) onUnauthorized(error);
  throw error;
}

export async function apiJson(path, options) {
  const response = await api(path, options);
  return response ? response.json() : null;
}
