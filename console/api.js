// api.js: the public HTTP API, with the key the user pasted. The key lives
// in sessionStorage (this tab only, gone when it closes) and goes in the
// Authorization header: never in a URL, never logged.
const KEY = 'hookgate.key';

export const key = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (k) => sessionStorage.setItem(KEY, k),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    let msg = e && e.message ? e.message : `HTTP ${status}`;
    if (e && Array.isArray(e.details) && e.details.length)
      msg += ': ' + e.details.map((d) => (d.field ? `${d.field} ${d.message}` : d.message)).join('; ');
    super(msg);
    this.status = status;
    this.type = e ? e.type : null;
  }
}

// request('GET', '/v1/webhooks', {query: {pageSize: 5}, body}) -> parsed JSON (or null).
export async function request(method, path, { query, body } = {}) {
  const k = key.get();
  if (!k) throw new ApiError(401, { error: { message: 'paste an API key first' } });
  const qs = new URLSearchParams();
  for (const [name, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== '') qs.set(name, String(v));
  const url = path + (qs.toString() ? `?${qs}` : '');
  const headers = { Authorization: `Bearer ${k}`, Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

const seg = encodeURIComponent;
export const api = {
  listWebhooks: (pageToken, pageSize = 25) => request('GET', '/v1/webhooks', { query: { pageSize, pageToken } }),
  getWebhook: (id) => request('GET', `/v1/webhooks/${seg(id)}`),
  createWebhook: (body) => request('POST', '/v1/webhooks', { body }),
  updateWebhook: (id, body) => request('PATCH', `/v1/webhooks/${seg(id)}`, { body }),
  deleteWebhook: (id) => request('DELETE', `/v1/webhooks/${seg(id)}`),
  rotateSecret: (id) => request('POST', `/v1/webhooks/${seg(id)}/rotate-secret`, { body: {} }),
  testWebhook: (id, body) => request('POST', `/v1/webhooks/${seg(id)}/test`, { body }),
  listDeliveries: (id, query) => request('GET', `/v1/webhooks/${seg(id)}/deliveries`, { query }),
  getDelivery: (id, did) => request('GET', `/v1/webhooks/${seg(id)}/deliveries/${seg(did)}`),
  replay: (id, did) => request('POST', `/v1/webhooks/${seg(id)}/deliveries/${seg(did)}/replay`),
  eventTypes: () => request('GET', '/v1/event-types'),
  publish: (body) => request('POST', '/v1/events', { body }),
};
