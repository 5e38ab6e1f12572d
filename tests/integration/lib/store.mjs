// store.mjs: the store a test gateway runs on.
//
// HG_TEST_STORE=postgresql (set by ctest for the integration-pg/ suite)
// runs every gateway on PostgreSQL: scripts/test starts a throwaway server
// (scripts/pg-tmp) and exports its address as HG_TEST_PG_URI; each test
// directory gets a database of its own, dropped when the test process
// exits. Otherwise a gateway's store is DIR/hookgate.db (SQLite).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

export const onPg = process.env.HG_TEST_STORE === 'postgresql';
export const STORE_KIND = onPg ? 'postgresql' : 'sqlite';

const PG_BASE = process.env.HG_TEST_PG_URI || '';
const stores = new Map(); // dir -> address
const made = [];

// The address of a database named name on the test server.
export function pgUri(name) {
  const [head, query] = PG_BASE.split('?');
  return head.replace(/[^/]*$/, name) + (query !== undefined ? `?${query}` : '');
}

function psql(uri, sql) {
  return execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', uri, '-c', sql],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

// A new, empty PostgreSQL database; returns its address.
export function newPgDatabase() {
  if (!PG_BASE) throw new Error('HG_TEST_STORE=postgresql needs HG_TEST_PG_URI (scripts/test starts the server)');
  const name = `hg_${process.pid}_${randomBytes(4).toString('hex')}`;
  psql(PG_BASE, `CREATE DATABASE ${name}`);
  made.push(name);
  return pgUri(name);
}

// The store of the gateway whose files live in dir: the same address every
// time for one dir, so that a test restarting a gateway on dir finds its data.
export function storeFor(dir) {
  if (!onPg) return join(dir, 'hookgate.db');
  if (!stores.has(dir)) stores.set(dir, newPgDatabase());
  return stores.get(dir);
}

// Runs sql on dir's store with the engine's own shell (sqlite3 or psql) and
// returns what it printed: rows on lines, columns separated by '|'.
export function storeQuery(dir, sql) {
  const addr = storeFor(dir);
  if (onPg) return psql(addr, sql);
  return execFileSync('sqlite3', [addr, sql], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

// Whether storeQuery can run here (the sqlite3 shell is optional).
export function haveStoreShell() {
  try {
    execFileSync(onPg ? 'psql' : 'sqlite3', [onPg ? '--version' : '-version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

process.on('exit', () => {
  if (/^(1|true|yes)$/i.test(process.env.HOOKGATE_KEEP_TMP || '')) return;
  for (const name of made) {
    try {
      psql(PG_BASE, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } catch {
      // The server goes at the end of the run anyway.
    }
  }
});
