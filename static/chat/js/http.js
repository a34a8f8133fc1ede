// JSON requests to the API with the session cookie and the CSRF token.

/** An API failure with the server's error type and a message a person can act on. */
export class ApiError extends Error {
  constructor(type, message, status) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

const STATUS_TYPES = {
  400: "invalid_request",
  401: "not_authenticated",
  403: "permission_denied",
  404: "not_found",
  409: "conflict",
  429: "rate_limit_error",
};

const STATUS_MESSAGES = {
  401: "You're logged out. Reload the page to log in again.",
  403: "You're logged out or the page is stale. Reload the page and try again.",
  404: "Not found. It may have been deleted.",
  409: "A reply is already being written in this conversation. Wait for it or stop it.",
  429: "Too many replies at once. Wait for one to finish, then try again.",
};

/** The CSRF token (from the page's meta tag, else the csrftoken cookie). */
export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) {
    return meta.content;
  }
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** Send a JSON request; resolves to the parsed body (null for 204), rejects with ApiError. */
export async function api(url, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["X-CSRFToken"] = csrfToken();
  }
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(
      "network_error",
      "Could not reach the server. Check your connection and try again.",
      0,
    );
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = data && typeof data.error === "object" ? data.error : null;
    const message =
      (error && error.message) ||
      STATUS_MESSAGES[response.status] ||
      (data && data.detail) ||
      `The server answered ${response.status}.`;
    const type = (error && error.type) || STATUS_TYPES[response.status] || "api_error";
    throw new ApiError(type, message, response.status);
  }
  return data;
}
