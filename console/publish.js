// publish.js: publishes an event of any type: one the gateway lists, or
// a name typed in (the gateway checks it).
import { api } from './api.js';
import { h, fill, field, facts } from './dom.js';

export async function publishView(main, _params, ctx) {
  const types = await api.eventTypes().then((r) => r.eventTypes || [], () => []);
  if (!ctx.alive()) return;
  const type = h('input', { type: 'text', name: 'type', list: 'publish-types', required: true, value: types.includes('user.created') ? 'user.created' : (types[0] || ''), autocomplete: 'off' });
  const data = h('textarea', { name: 'data', rows: 8, spellcheck: 'false', required: true });
  data.value = '{\n  "test": true\n}';
  const org = h('input', { type: 'text', name: 'organizationId', placeholder: 'optional' });
  const out = h('div', { id: 'publish-out' });
  const form = h('form', { class: 'card', id: 'publish-form', onsubmit: async (e) => {
    e.preventDefault();
    let parsed;
    try { parsed = JSON.parse(data.value); } catch (err) { ctx.say(`Data is not valid JSON: ${err.message}`, 'error'); data.focus(); return; }
    const body = { type: type.value.trim(), data: parsed };
    if (org.value.trim()) body.organizationId = org.value.trim();
    try {
      const r = await api.publish(body);
      fill(out, h('h2', {}, 'Published'), facts(Object.entries(r || {}).map(([k, v]) => [k, typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)])));
      ctx.say(`Event ${r && r.id ? r.id : ''} published.`);
    } catch (err) { fill(out); ctx.say(err.message, 'error'); }
  } },
  field('Event type', type, `Pick one of the ${types.length} types the gateway knows, or type a name`).wrap,
  h('datalist', { id: 'publish-types' }, types.map((t) => h('option', { value: t }))),
  field('Data (a JSON object)', data).wrap,
  field('Organization id', org, 'Leave empty for none (an organization key uses its own)').wrap,
  h('button', { type: 'submit', id: 'publish' }, 'Publish event'));
  fill(main, h('h1', {}, 'Publish an event'), form, out);
}
