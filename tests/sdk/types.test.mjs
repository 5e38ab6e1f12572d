// The SDK's .d.ts files, as a user's TypeScript sees them: tsc type-checks
// fixtures/usage.ts (calls with the right shapes, and @ts-expect-error on
// wrong ones) against clients/typescript/dist with the SDK's pinned tsc.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SDK_DIR } from './lib/sdk.mjs';

test('the SDK\'s types accept the API\'s shapes and refuse wrong ones', async () => {
  const tsc = `${SDK_DIR}node_modules/typescript/bin/tsc`;
  assert.ok(existsSync(tsc), `${tsc} is missing: run (cd clients/typescript && npm ci)`);
  const fixture = fileURLToPath(new URL('./fixtures/usage.ts', import.meta.url));
  let out = '';
  try {
    await promisify(execFile)(process.execPath, [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext',
      '--moduleResolution', 'nodenext', '--types', 'node', '--noUncheckedIndexedAccess', fixture], { cwd: SDK_DIR });
  } catch (e) {
    out = (e.stdout || '') + (e.stderr || '') || String(e);
  }
  assert.equal(out, '', out);
});
