// The source tree's shape, read from the code itself: the layers the
// folders of core/ draw (docs/architecture.md), no include cycle between
// modules, no C file past 1,200 lines. Nothing here runs the gateway.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, dirname, extname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CORE = join(ROOT, 'core');

// Bottom up: a folder includes from its own folder and the ones before it.
// '.' is core/ itself (app and main).
export const LAYERS = ['base', 'net', 'store', 'lua', 'config', 'sandbox', 'pipeline', 'api', '.'];
const MAX_LINES = 1200;

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.c') || name.endsWith('.h')) out.push(p);
  }
  return out;
}

// file (relative to core/) -> { includes: [file relative to core/], lines }
function readTree() {
  const files = new Map();
  for (const abs of walk(CORE)) {
    const rel = relative(CORE, abs);
    const text = readFileSync(abs, 'utf8');
    const includes = [];
    for (const m of text.matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)) includes.push(m[1]);
    files.set(rel, { includes, lines: text.split('\n').length - (text.endsWith('\n') ? 1 : 0) });
  }
  // Resolve each quoted include the way the build does: from core/ (the
  // include root), else beside the including file.
  for (const [rel, f] of files) {
    f.resolved = [];
    for (const inc of f.includes) {
      const beside = join(dirname(rel), inc);
      if (files.has(inc)) f.resolved.push(inc);
      else if (files.has(beside)) f.resolved.push(beside);
      else f.unresolved = (f.unresolved ?? []).concat(inc);
    }
  }
  return files;
}

// A .c and its .h are one module; so is X_internal.h, the contract between
// the files that implement X (its public header's own implementation).
const moduleOf = (rel) => rel.slice(0, -extname(rel).length).replace(/_internal$/, '');
const layerOf = (rel) => (dirname(rel) === '.' ? '.' : rel.split('/')[0]);

// Strongly connected components with more than one module (Tarjan).
export function cycles(edges) {
  let index = 0;
  const idx = new Map(), low = new Map(), onStack = new Set(), stack = [], out = [];
  const visit = (v) => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const comp = [];
      let w;
      do { w = stack.pop(); onStack.delete(w); comp.push(w); } while (w !== v);
      if (comp.length > 1) out.push(comp.sort());
    }
  };
  for (const v of edges.keys()) if (!idx.has(v)) visit(v);
  return out;
}

const files = readTree();

test('every quoted include names a file of core/ from the include root', () => {
  const bad = [...files].filter(([, f]) => f.unresolved).map(([rel, f]) => `${rel}: ${f.unresolved.join(', ')}`);
  assert.deepEqual(bad, []);
  // and names its folder, so the layer shows at the include
  const bare = [];
  for (const [rel, f] of files)
    for (const inc of f.includes) if (!inc.includes('/') && dirname(rel) !== '.') bare.push(`${rel}: "${inc}"`);
  assert.deepEqual(bare, [], 'includes are written from core/, e.g. "base/common.h"');
});

test('no include cycle between modules (a .c with its .h and its _internal.h)', () => {
  const edges = new Map();
  for (const [rel, f] of files) {
    const m = moduleOf(rel);
    if (!edges.has(m)) edges.set(m, new Set());
    for (const to of f.resolved) if (moduleOf(to) !== m) edges.get(m).add(moduleOf(to));
  }
  assert.deepEqual(cycles(edges), []);
});

test('each folder includes only from its own layer and the layers below it', () => {
  const folders = new Set([...files.keys()].map(layerOf));
  assert.deepEqual([...folders].filter((d) => !LAYERS.includes(d)), [], 'a new folder needs its place in LAYERS and in docs/architecture.md');
  const up = [];
  for (const [rel, f] of files)
    for (const to of f.resolved)
      if (LAYERS.indexOf(layerOf(to)) > LAYERS.indexOf(layerOf(rel))) up.push(`${rel} -> ${to}`);
  assert.deepEqual(up, []);
});

test(`no C file in core/ over ${MAX_LINES} lines`, () => {
  const big = [...files].filter(([rel, f]) => rel.endsWith('.c') && f.lines > MAX_LINES).map(([rel, f]) => `${rel}: ${f.lines}`);
  assert.deepEqual(big, []);
});

test('the checker finds a cycle and an upward include when there is one', () => {
  // The test above is only worth something if it can fail.
  const edges = new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])], ['d', new Set(['a'])]]);
  assert.deepEqual(cycles(edges), [['a', 'b', 'c']]);
  assert.deepEqual(cycles(new Map([['a', new Set(['b'])], ['b', new Set()]])), []);
  assert.ok(LAYERS.indexOf(layerOf('pipeline/dispatcher.c')) > LAYERS.indexOf(layerOf('base/common.h')));
  assert.equal(layerOf('app.c'), '.');
});

test('CMakeLists.txt lists every core source once, in its layer, and globs none', () => {
  const cm = readFileSync(join(ROOT, 'CMakeLists.txt'), 'utf8');
  const core = cm.slice(cm.indexOf('# --- The core'), cm.indexOf('add_library(hg_core'));
  assert.doesNotMatch(core, /file\(GLOB/);
  const listed = [...core.matchAll(/^\s+core\/(\S+\.c)\s*$/gm)].map((m) => m[1]);
  const sources = [...files.keys()].filter((r) => r.endsWith('.c') && r !== 'main.c');
  assert.deepEqual([...listed].sort(), [...sources].sort());
  for (const block of core.matchAll(/set\(HG_SRC_(\w+)\n([^)]*)\)/g)) {
    const layer = block[1] === 'APP' ? '.' : block[1].toLowerCase();
    for (const m of block[2].matchAll(/core\/(\S+\.c)/g)) assert.equal(layerOf(m[1]), layer, `${m[1]} in HG_SRC_${block[1]}`);
  }
});
