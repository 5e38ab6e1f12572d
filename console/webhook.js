// webhook.js: one webhook: its settings, activate/deactivate, delete (with
// a confirmation), secret rotation, a test send, and its deliveries,
// filtered, paged and refreshed live while the tab is visible.
import { api } from './api.js';
import { h, fill, table, when, badge, field, facts, secretBox, splitList } from './dom.js';

const POLL_MS = 3000;

export async function webhookView(main, [id], ctx) {
  let w = await api.getWebhook(id);
  const types = await api.eventTypes().then((r) => r.eventTypes || [], () => []);
  if (!ctx.alive()) return;
  const fail = (err) => ctx.say(err.message, 'error');
  const title = h('h1', {}, 'Webhook');
  const summary = h('div');
  const showSummary = () => {
    fill(summary, facts([
      ['Id', h('code', {}, w.id)],
      ['URL', h('span', { class: 'url' }, w.url)],
      ['State', badge(w.active ? 'active' : 'disabled')],
      ['Organization', w.organizationId || '—'],
      ['Created', when(w.createdAt)],
      ['Updated', when(w.updatedAt)],
    ]));
    toggle.textContent = w.active ? 'Deactivate' : 'Activate';
  };

  // --- settings ---
  const url = h('input', { type: 'url', name: 'url', required: true, value: w.url });
  const events = h('input', { type: 'text', name: 'events', required: true, value: w.events.join(', ') });
  const active = h('input', { type: 'checkbox', name: 'active', checked: w.active });
  const metadata = h('textarea', { name: 'metadata', rows: 3, spellcheck: 'false' });
  metadata.value = JSON.stringify(w.metadata || {}, null, 2);
  const settings = h('form', { class: 'card', id: 'settings-form', onsubmit: async (e) => {
    e.preventDefault();
    let meta;
    try { meta = JSON.parse(metadata.value || '{}'); } catch { ctx.say('Metadata must be a JSON object of strings.', 'error'); metadata.focus(); return; }
    try {
      w = await api.updateWebhook(id, { url: url.value.trim(), events: splitList(events.value), active: active.checked, metadata: meta });
      showSummary();
      ctx.say('Settings saved.');
    } catch (err) { fail(err); }
  } },
  h('h2', {}, 'Settings'),
  field('Receiver URL', url).wrap,
  field('Event types', events, 'Comma-separated names or patterns').wrap,
  field('Active (deliver to it)', active).wrap,
  field('Metadata (JSON object of strings)', metadata).wrap,
  h('button', { type: 'submit' }, 'Save settings'));

  const toggle = h('button', { type: 'button', id: 'toggle-active', onclick: async () => {
    try {
      w = await api.updateWebhook(id, { active: !w.active });
      active.checked = w.active;
      showSummary();
      ctx.say(w.active ? 'Webhook activated.' : 'Webhook deactivated: deliveries wait until it is active again.');
    } catch (err) { fail(err); }
  } });

  // Delete asks first, in the page: the second button does it.
  const confirmBox = h('div', { class: 'confirm', hidden: true, role: 'group', 'aria-label': 'Confirm deletion' });
  const del = h('button', { type: 'button', class: 'danger', id: 'delete', onclick: () => {
    fill(confirmBox,
      h('p', {}, 'Delete this webhook? Its deliveries stop; this cannot be undone.'),
      h('button', { type: 'button', class: 'danger', id: 'delete-confirm', onclick: async () => {
        try {
          await api.deleteWebhook(id);
          ctx.say(`Webhook ${id} deleted.`);
          location.hash = '#/webhooks';
        } catch (err) { fail(err); }
      } }, 'Yes, delete it'),
      h('button', { type: 'button', id: 'delete-cancel', onclick: () => { confirmBox.hidden = true; del.focus(); } }, 'Cancel'));
    confirmBox.hidden = false;
    confirmBox.querySelector('#delete-cancel').focus();
  } }, 'Delete…');

  // --- secret and test ---
  const secretOut = h('div', { id: 'secret-out' });
  const rotate = h('button', { type: 'button', id: 'rotate', onclick: async () => {
    try {
      const r = await api.rotateSecret(id);
      fill(secretOut, secretBox(r.secret), h('p', { class: 'hint' }, 'The previous secret keeps signing until ', when(r.previousSecretExpiresAt), '.'));
      ctx.say('Secret rotated: the new one is shown below, once.');
    } catch (err) { fail(err); }
  } }, 'Rotate secret');

  const testType = h('select', { name: 'event' }, types.map((t) => h('option', { value: t, selected: t === 'webhook.test' }, t)));
  const testOut = h('div', { id: 'test-out' });
  const testForm = h('form', { class: 'inline', id: 'test-form', onsubmit: async (e) => {
    e.preventDefault();
    fill(testOut, h('p', { class: 'muted' }, 'Sending…'));
    try {
      const r = await api.testWebhook(id, testType.value ? { event: testType.value } : {});
      fill(testOut, facts([
        ['Outcome', badge(r.success ? 'success' : 'failed')],
        ['statusCode', String(r.statusCode)],
        ['durationMs', String(r.durationMs)],
        ['error', r.error || '—'],
        ['responseBody', h('pre', { class: 'body', id: 'test-body' }, r.responseBody || '')],
      ]));
      ctx.say(`Test sent: HTTP ${r.statusCode} in ${r.durationMs} ms.`);
      refresh();
    } catch (err) { fill(testOut); fail(err); }
  } }, field('Event type', testType).wrap, h('button', { type: 'submit', id: 'send-test' }, 'Send test'));

  // --- deliveries ---
  const status = h('select', { name: 'status' }, ['', 'pending', 'success', 'failed', 'skipped'].map((s) => h('option', { value: s }, s || 'any')));
  const evFilter = h('input', { type: 'text', name: 'event', list: 'event-types', placeholder: 'any' });
  const datalist = h('datalist', { id: 'event-types' }, types.map((t) => h('option', { value: t })));
  const list = h('div', { id: 'deliveries' });
  const pager = h('div', { class: 'pager' });
  const live = h('p', { class: 'hint', id: 'live' });
  const tokens = [''];
  let page = 0;
  let timer = null;

  async function refresh() {
    try {
      const res = await api.listDeliveries(id, { pageSize: 25, pageToken: tokens[page] || undefined, status: status.value, event: evFilter.value.trim() });
      if (!ctx.alive()) return;
      const rows = (res.deliveries || []).map((d) => [
        h('a', { href: `#/webhooks/${encodeURIComponent(id)}/deliveries/${encodeURIComponent(d.id)}` }, h('code', {}, d.id)),
        d.event, badge(d.status), d.statusCode === null ? '—' : String(d.statusCode), String(d.attempts), when(d.createdAt), when(d.nextAttemptAt),
      ]);
      // Keep focus where it was when the table is replaced under it.
      const focused = document.activeElement && list.contains(document.activeElement) ? document.activeElement.getAttribute('href') : null;
      fill(list, table(`Deliveries, page ${page + 1}`, ['Delivery', 'Event type', 'Status', 'HTTP status', 'Attempts', 'Created', 'Next attempt'], rows, 'No deliveries match.'));
      if (focused) { const a = list.querySelector(`a[href="${CSS.escape(focused)}"]`); if (a) a.focus(); }
      if (res.nextPageToken) tokens[page + 1] = res.nextPageToken;
      prev.disabled = page === 0;
      next.disabled = !res.nextPageToken;
    } catch (err) { fail(err); }
  }
  const prev = h('button', { type: 'button', onclick: () => { page--; refresh(); } }, 'Previous page');
  const next = h('button', { type: 'button', onclick: () => { page++; refresh(); } }, 'Next page');
  fill(pager, prev, next);
  const filters = h('form', { class: 'inline', id: 'filters', onsubmit: (e) => { e.preventDefault(); tokens.length = 1; page = 0; refresh(); } },
    field('Status', status).wrap, field('Event type', evFilter).wrap, datalist, h('button', { type: 'submit' }, 'Filter'));
  status.addEventListener('change', () => { tokens.length = 1; page = 0; refresh(); });

  // Poll while the tab is visible; hidden, stop, and catch up on return.
  function schedule() {
    clearInterval(timer);
    timer = null;
    if (document.visibilityState === 'visible') {
      timer = setInterval(refresh, POLL_MS);
      live.textContent = `Live: refreshed every ${POLL_MS / 1000} s while this tab is visible.`;
    } else {
      live.textContent = 'Paused while the tab is hidden.';
    }
  }
  const onVisibility = () => { if (document.visibilityState === 'visible') refresh(); schedule(); };
  document.addEventListener('visibilitychange', onVisibility);

  fill(main,
    h('p', {}, h('a', { href: '#/webhooks' }, '← All webhooks')),
    title, summary,
    h('div', { class: 'actions' }, toggle, del), confirmBox,
    h('div', { class: 'grid' },
      settings,
      h('section', { class: 'card', 'aria-labelledby': 'h-secret' }, h('h2', { id: 'h-secret' }, 'Signing secret'),
        h('p', { class: 'hint' }, 'A new secret signs from now on; the current one keeps signing beside it for 24 hours.'), rotate, secretOut),
      h('section', { class: 'card', 'aria-labelledby': 'h-test' }, h('h2', { id: 'h-test' }, 'Send a test'),
        h('p', { class: 'hint' }, 'One delivery now, without retries, shown with the receiver\'s answer.'), testForm, testOut)),
    h('section', { 'aria-labelledby': 'h-deliveries' }, h('h2', { id: 'h-deliveries' }, 'Deliveries'), filters, live, list, pager));
  showSummary();
  await refresh();
  schedule();
  return () => {
    clearInterval(timer);
    document.removeEventListener('visibilitychange', onVisibility);
  };
}
