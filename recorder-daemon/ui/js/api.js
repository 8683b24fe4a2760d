// The HTTP API under /api/v1 with the signed-in user's bearer token (sessionStorage: gone
// when the tab closes, not shared with other tabs).

const KEY = 'recorder.token';

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export function token() { return sessionStorage.getItem(KEY); }
export function setToken(t) { sessionStorage.setItem(KEY, t.trim()); me = null; }
export function signOut() { sessionStorage.removeItem(KEY); me = null; }

/** Calls the API; JSON in and out unless `raw` (then the Response). 401 signs out. */
export async function api(path, { method = 'GET', body, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`/api/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).error || msg; } catch { /* not JSON */ }
    if (r.status === 401) {
      signOut();
      window.dispatchEvent(new CustomEvent('signed-out', { detail: msg }));
    }
    throw new ApiError(r.status, msg);
  }
  if (raw) return r;
  if (r.status === 204) return null;
  return r.json();
}

/** The media URL an <audio> element or a download link can use: see docs/ui.md. */
export function mediaUrl(id, leg, download = false) {
  const q = new URLSearchParams({ leg });
  if (download) q.set('download', 'true');
  q.set('access_token', token());
  return `/api/v1/interactions/${id}/media?${q}`;
}

let me = null;
/** GET /me, cached for the session. */
export async function whoAmI() {
  if (!me) me = await api('/me');
  return me;
}

/** Whether the caller has a permission (a global administrator has all). */
export function can(m, perm) {
  return !!m && (m.effective.globalAdmin || m.effective.permissions.includes(perm));
}

/** Whether the caller may see any call. */
export function hasCalls(m) {
  return !!m && (m.effective.globalAdmin || (m.effective.callAccess && m.effective.callAccess !== 'none'));
}
