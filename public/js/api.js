// The JSON API client: every request carries `Authorization: Bearer <key>` from sessionStorage.
// A 401 forgets the key and tells the app to show the login form.

const KEY = 'phone-agent.api-key';

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

/** An API error: `{code, message, request_id, details?}` plus the HTTP status. */
export class ApiError extends Error {
  constructor(status, error = {}) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || 'http_error';
    this.requestId = error.request_id || null;
    this.details = Array.isArray(error.details) ? error.details : [];
  }
}

/**
 * Calls `/api/v1{path}`; resolves to the parsed JSON body, rejects with ApiError. `raw`
 * ({type, text}) sends a non-JSON body as is (an .ics file).
 */
export async function api(method, path, body, { key = session.key, headers: extra = {}, raw = null } = {}) {
  const headers = { authorization: `Bearer ${key ?? ''}`, ...extra };
  if (raw) headers['content-type'] = raw.type;
  else if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: raw ? raw.text : body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, { code: 'network_error', message: `The worker is unreachable (${e.message})` });
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, json?.error ?? { message: text.slice(0, 200) || res.statusText });
    // A refused session key logs out; a key being tried at login does not.
    if (res.status === 401 && key && key === session.key) {
      session.key = null;
      window.dispatchEvent(new CustomEvent('auth:required', { detail: err }));
    }
    throw err;
  }
  return json;
}

/** Query string from an object, skipping empty values. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : '';
}
