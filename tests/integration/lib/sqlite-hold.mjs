// sqlite-hold.mjs: another process holding the SQLite store's write lock
// (tests/tools/sqlite_hold: BEGIN IMMEDIATE, held until its standard input
// closes), so that the store cannot write, without any test hook in the
// gateway. HG_SQLITE_HOLD names the holder (default: beside the gateway
// binary under build/).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { BIN } from './gateway.mjs';
import { until } from './delivery.mjs';

const HOLD = process.env.HG_SQLITE_HOLD || join(BIN, '..', 'sqlite_hold');

// Takes the write lock of the store in dir; resolves with release() once it
// is held.
export async function holdLock(dir) {
  const proc = spawn(HOLD, [join(dir, 'hookgate.db')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  await until(() => out.includes('locked') || proc.exitCode !== null, { what: 'the write lock' });
  assert.ok(out.includes('locked'), `sqlite_hold: ${out}`);
  return {
    async release() {
      proc.stdin.end();
      assert.equal(await exited, 0, out);
    },
  };
}

