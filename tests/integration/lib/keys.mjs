// keys.mjs: API keys for a running test gateway, made with the real CLI
// (`hookgate keys create`) on the gateway's own store.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BIN } from './gateway.mjs';

const run = promisify(execFile);

// makeKey(gw, 'webhooks:read,webhooks:write', 'org_a') -> { key, id }
export async function makeKey(gw, scopes, org) {
  const args = ['keys', 'create', '-c', gw.cfgPath, '--scopes', scopes];
  if (org) args.push('--org', org);
  const env = { ...process.env, HOOKGATE_STORE: gw.store, HOOKGATE_LOG_LEVEL: 'error' };
  const { stdout, stderr } = await run(BIN, args, { env });
  const key = stdout.trim();
  assert.match(key, /^hg_[A-Za-z0-9_-]{43}$/, `keys create printed ${JSON.stringify(stdout)}`);
  const id = stderr.match(/created key (key_\S+)/)?.[1];
  assert.ok(id, `no key id on stderr: ${stderr}`);
  return { key, id };
}
