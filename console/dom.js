// dom.js: builds elements from data. Every value goes in as text (a text
// node or an attribute set through the DOM), never as HTML, so whatever a
// receiver or a webhook's metadata holds is shown, not run.

// h('button', {type: 'button', onclick: f}, 'Save', child, ...) -> element.
// Attributes: on* take functions; class, for, aria-*, data-* and the rest
// are set with setAttribute; null/undefined/false leave them out.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Replaces el's children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A date as the browser's local time, with the ISO value in a <time>.
export function when(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  const text = Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
  return h('time', { datetime: iso, title: iso }, text);
}

// A status badge: the word is the information, the colour only repeats it.
export function badge(status) {
  return h('span', { class: `badge badge-${String(status).replace(/[^a-z]/g, '')}` }, String(status));
}

// A table with a caption, column headers (scope=col) and rows of cells.
export function table(caption, heads, rows, empty = 'Nothing here yet.') {
  if (rows.length === 0) return h('p', { class: 'muted' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, heads.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c, i) => (i === 0 ? h('th', { scope: 'row' }, c) : h('td', { 'data-label': heads[i] }, c))))))));
}

// A definition list from [term, value] pairs.
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

// A labelled form field; returns {wrap, input}.
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h('span', { class: 'hint', id: `${id}-hint` }, hint);
    input.setAttribute('aria-describedby', hintEl.id);
  }
  const wrap = input.type === 'checkbox'
    ? h('div', { class: 'field check' }, input, h('label', { for: id }, label), hintEl)
    : h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl);
  return { wrap, input };
}

// "a, b c" -> ['a', 'b', 'c'].
export function splitList(s) {
  return s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
}

// A new signing secret, shown once, with a button that copies it.
export function secretBox(secret) {
  const code = h('code', { class: 'secret', id: 'new-secret' }, secret);
  const note = h('span', { class: 'hint', 'aria-live': 'polite' });
  const copy = h('button', { type: 'button', id: 'copy-secret', onclick: async () => {
    try {
      await navigator.clipboard.writeText(secret);
      note.textContent = 'Copied.';
    } catch {
      // No clipboard access (an http page on another host): select it instead.
      const r = document.createRange();
      r.selectNodeContents(code);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(r);
      note.textContent = 'Selected: press Ctrl+C (or Cmd+C) to copy.';
    }
  } }, 'Copy secret');
  return h('div', { class: 'secret-box', role: 'group', 'aria-label': 'New signing secret' },
    h('p', {}, h('strong', {}, 'New signing secret. '), 'It is shown this once: copy it now.'),
    code, copy, note);
}
