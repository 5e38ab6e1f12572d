// delivery.js: one delivery: its event, each attempt with the receiver's
// answer, the next attempt, and a replay button. Refreshes live while it
// is pending and the tab is visible.
import { api } from './api.js';
import { h, fill, when, badge, facts } from './dom.js';

const POLL_MS = 3000;

function headerTable(headers) {
  const rows = Array.isArray(headers) ? headers : Object.entries(headers);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'headers' },
    h('caption', {}, 'Request headers'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Value'))),
    h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, String(k)), h('td', {}, String(v)))))));
}

function attemptCard(a) {
  const ok = a.statusCode !== null && a.statusCode >= 200 && a.statusCode < 300;
  const parts = [
    h('h3', {}, `Attempt ${a.attempt} `, badge(ok ? 'success' : 'failed')),
    facts([
      ['Started', when(a.startedAt)],
      ['Response status', a.statusCode === null ? 'no answer' : String(a.statusCode)],
      ['Duration', `${a.durationMs} ms`],
      ['Error', a.error || '—'],
    ]),
  ];
  // null for an attempt that made no request, or recorded before the API kept them.
  const headers = a.requestHeaders;
  if (headers) parts.push(headerTable(headers));
  parts.push(h('h4', {}, 'Response body'), a.responseBody === null || a.responseBody === undefined
    ? h('p', { class: 'muted' }, 'No body.')
    : h('pre', { class: 'body response-body' }, a.responseBody));
  return h('li', { class: 'card attempt' }, parts);
}

export async function deliveryView(main, [id, did], ctx) {
  const summary = h('div');
  const eventEl = h('div');
  const attempts = h('ol', { class: 'attempts', 'aria-label': 'Attempts, oldest first' });
  let timer = null;
  let d = null;

  async function load() {
    d = await api.getDelivery(id, did);
    if (!ctx.alive()) return;
    fill(summary, facts([
      ['Delivery', h('code', {}, d.id)],
      ['Event type', d.event],
      ['Event id (webhook-id)', h('code', {}, d.eventId)],
      ['Status', badge(d.status)],
      ['Last HTTP status', d.statusCode === null ? '—' : String(d.statusCode)],
      ['Created', when(d.createdAt)],
      ['Updated', when(d.updatedAt)],
      ['Next attempt', d.nextAttemptAt ? when(d.nextAttemptAt) : (d.status === 'pending' ? 'now' : 'none')],
    ]));
    const body = d.payload;
    fill(eventEl, body === undefined || body === null
      ? h('p', { class: 'muted' }, 'The event\'s body cannot be shown (it does not parse as JSON here); its type and id are above.')
      : h('pre', { class: 'body', id: 'event-body' }, JSON.stringify(body, null, 2)));
    const list = Array.isArray(d.attempts) ? d.attempts : [];
    fill(attempts, list.length ? list.map(attemptCard) : h('li', { class: 'muted' }, 'No attempt yet.'));
  }
  const tick = () => load().catch((err) => ctx.say(err.message, 'error'));

  const replay = h('button', { type: 'button', id: 'replay', onclick: async () => {
    try {
      await api.replay(id, did);
      ctx.say('Replay queued: the delivery is pending and goes out now.');
      await load();
    } catch (err) { ctx.say(err.message, 'error'); }
  } }, 'Replay delivery');

  function schedule() {
    clearInterval(timer);
    timer = document.visibilityState === 'visible' ? setInterval(tick, POLL_MS) : null;
  }
  const onVisibility = () => { if (document.visibilityState === 'visible') tick(); schedule(); };
  document.addEventListener('visibilitychange', onVisibility);

  fill(main,
    h('p', {}, h('a', { href: `#/webhooks/${encodeURIComponent(id)}` }, '← The webhook and its deliveries')),
    h('h1', {}, 'Delivery'), summary,
    h('div', { class: 'actions' }, replay),
    h('section', { 'aria-labelledby': 'h-event' }, h('h2', { id: 'h-event' }, 'Event'), eventEl),
    h('section', { 'aria-labelledby': 'h-attempts' }, h('h2', { id: 'h-attempts' }, 'Attempts'), attempts));
  await load();
  schedule();
  return () => {
    clearInterval(timer);
    document.removeEventListener('visibilitychange', onVisibility);
  };
}
