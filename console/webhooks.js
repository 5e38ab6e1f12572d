// webhooks.js: the list of webhooks with a recent success rate each, and
// the form that registers one.
import { api } from './api.js';
import { h, fill, table, when, badge, field, secretBox, splitList } from './dom.js';

// How many of each webhook's latest deliveries the rate is computed from.
export const WINDOW = 50;

// {rate: "97%" or "—", lastSuccess: ISO or null} from a page of deliveries.
export function health(deliveries) {
  const done = deliveries.filter((d) => d.status === 'success' || d.status === 'failed');
  const ok = done.filter((d) => d.status === 'success');
  const last = ok.map((d) => d.updatedAt).sort().pop() || null;
  return { rate: done.length ? `${Math.round((100 * ok.length) / done.length)}% (${ok.length}/${done.length})` : '—', lastSuccess: last };
}

export async function webhooksView(main, _params, ctx) {
  const listEl = h('div', { id: 'webhook-list' });
  const pager = h('div', { class: 'pager' });
  const tokens = [''];
  let page = 0;

  async function load() {
    const res = await api.listWebhooks(tokens[page] || undefined);
    if (!ctx.alive()) return;
    const hooks = res.webhooks || [];
    const stats = await Promise.all(hooks.map((w) => api.listDeliveries(w.id, { pageSize: WINDOW }).then((r) => health(r.deliveries || []), () => ({ rate: '?', lastSuccess: null }))));
    if (!ctx.alive()) return;
    fill(listEl, table(`Webhooks, page ${page + 1}`, ['URL', 'Event types', 'State', 'Organization', `Success rate (last ${WINDOW})`, 'Last success'],
      hooks.map((w, i) => [
        h('a', { href: `#/webhooks/${encodeURIComponent(w.id)}`, class: 'url' }, w.url),
        w.events.join(', '),
        badge(w.active ? 'active' : 'disabled'),
        w.organizationId || '—',
        stats[i].rate,
        when(stats[i].lastSuccess),
      ]), 'No webhooks yet: add one below.'));
    if (res.nextPageToken) tokens[page + 1] = res.nextPageToken;
    fill(pager,
      h('button', { type: 'button', disabled: page === 0, onclick: () => { page--; load().catch(fail); } }, 'Previous page'),
      h('button', { type: 'button', disabled: !res.nextPageToken, onclick: () => { page++; load().catch(fail); } }, 'Next page'));
  }
  const fail = (err) => ctx.say(err.message, 'error');

  const url = h('input', { type: 'url', name: 'url', required: true, placeholder: 'https://example.com/hooks', inputmode: 'url' });
  const events = h('input', { type: 'text', name: 'events', required: true, placeholder: 'user.created, user.*' });
  const org = h('input', { type: 'text', name: 'organizationId', placeholder: 'optional' });
  const created = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card', id: 'create-form', onsubmit: async (e) => {
    e.preventDefault();
    const body = { url: url.value.trim(), events: splitList(events.value) };
    if (org.value.trim()) body.organizationId = org.value.trim();
    try {
      const w = await api.createWebhook(body);
      ctx.say(`Webhook ${w.id} created.`);
      form.reset();
      fill(created, h('p', {}, 'Created ', h('a', { href: `#/webhooks/${encodeURIComponent(w.id)}` }, w.url), '.'), secretBox(w.secret));
      await load();
    } catch (err) { fail(err); }
  } },
  h('h2', {}, 'Add a webhook'),
  field('Receiver URL', url).wrap,
  field('Event types', events, 'Comma-separated names or patterns, e.g. user.created, user.*').wrap,
  field('Organization id', org, 'Leave empty for none (an organization key uses its own)').wrap,
  h('button', { type: 'submit' }, 'Create webhook'),
  created);

  fill(main,
    h('h1', {}, 'Webhooks'),
    h('p', { class: 'muted' }, `Success rate and last success are computed from each webhook's latest ${WINDOW} deliveries (finished ones only: success or failed), not from its whole history.`),
    listEl, pager, form);
  await load();
}
