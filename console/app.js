// app.js: the console's shell: the key form, the status line and the
// hash router (#/webhooks, #/webhooks/ID, #/webhooks/ID/deliveries/DID,
// #/publish). A view is a function (main, params, ctx) that renders into
// main and may return a cleanup function, run when the view is left.
import { key } from './api.js';
import { h, fill } from './dom.js';
import { webhooksView } from './webhooks.js';
import { webhookView } from './webhook.js';
import { deliveryView } from './delivery.js';
import { publishView } from './publish.js';

const main = document.getElementById('main');
const statusEl = document.getElementById('status');
const keyInput = document.getElementById('key-input');

// Status messages go to one aria-live region: screen readers announce them.
export function say(text, kind = 'info') {
  statusEl.textContent = text;
  statusEl.dataset.kind = kind;
}

const routes = [
  [/^#\/webhooks\/([^/]+)\/deliveries\/([^/]+)$/, deliveryView, 'webhooks'],
  [/^#\/webhooks\/([^/]+)$/, webhookView, 'webhooks'],
  [/^#\/publish$/, publishView, 'publish'],
  [/^#\/webhooks$/, webhooksView, 'webhooks'],
];

let cleanup = null;
let generation = 0;

async function route() {
  if (cleanup) { try { cleanup(); } catch { /* the old view is gone anyway */ } }
  cleanup = null;
  const gen = ++generation;
  const hash = location.hash || '#/webhooks';
  let view = null, params = [], nav = '';
  for (const [re, fn, n] of routes) {
    const m = hash.match(re);
    if (m) { view = fn; params = m.slice(1).map(decodeURIComponent); nav = n; break; }
  }
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!view) {
    fill(main, h('h1', {}, 'Not found'), h('p', {}, 'No such view. ', h('a', { href: '#/webhooks' }, 'Back to the webhooks')));
    return;
  }
  if (!key.get()) {
    fill(main, h('h1', {}, 'Paste an API key'),
      h('p', {}, 'The console calls the gateway\'s API with a key you paste above. It stays in this tab only (sessionStorage) and is sent in the Authorization header, never in a URL.'),
      h('p', {}, 'An organization key sees its organization\'s webhooks and deliveries only.'));
    return;
  }
  fill(main, h('p', { class: 'muted' }, 'Loading…'));
  const ctx = { say, alive: () => gen === generation };
  try {
    const c = await view(main, params, ctx);
    if (gen === generation) cleanup = typeof c === 'function' ? c : null;
    else if (typeof c === 'function') c();
  } catch (err) {
    if (gen !== generation) return;
    fill(main, h('h1', {}, 'Could not load this view'), h('p', { class: 'error' }, err.message));
    say(err.message, 'error');
  }
}

document.getElementById('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const k = keyInput.value.trim();
  if (!k) return;
  key.set(k);
  keyInput.value = '';
  keyInput.placeholder = 'key in use (this tab only)';
  say('Key saved for this tab.');
  route();
});
document.getElementById('key-forget').addEventListener('click', () => {
  key.clear();
  keyInput.placeholder = 'hg_…';
  say('Key forgotten.');
  route();
});
if (key.get()) keyInput.placeholder = 'key in use (this tab only)';

window.addEventListener('hashchange', () => {
  route();
  main.focus({ preventScroll: false });
});
route();
