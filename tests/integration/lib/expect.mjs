// expect.mjs: assertions on hookgate API answers, shared by the API tests.
import assert from 'node:assert/strict';

// RFC 3339, UTC, with milliseconds: 2026-11-27T06:02:11.123Z
export const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const ID_RE = /^wh_[0-9a-hjkmnp-tv-z]{26}$/;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Asserts a response is the error envelope with this status and type; returns the error object.
export function expectError(res, status, type) {
  assert.equal(res.status, status, `expected ${status} ${type}, got ${res.status}: ${res.body}`);
  assert.ok(res.json && typeof res.json.error === 'object', `no error envelope: ${res.body}`);
  const e = res.json.error;
  assert.equal(e.type, type, res.body);
  assert.equal(typeof e.message, 'string');
  assert.ok(e.message.length > 0);
  assert.ok(Array.isArray(e.details), `details must be an array: ${res.body}`);
  for (const d of e.details) {
    assert.equal(typeof d.field, 'string', res.body);
    assert.equal(typeof d.message, 'string', res.body);
  }
  return e;
}

// Asserts a 422 validation_error whose details name exactly the given fields
// (in any order; each at least once), and returns the details.
export function expectValidation(res, fields) {
  const e = expectError(res, 422, 'validation_error');
  const got = e.details.map((d) => d.field);
  assert.deepEqual([...new Set(got)].sort(), [...new Set(fields)].sort(), `fields in ${res.body}`);
  if (got.length > 1) assert.match(e.message, new RegExp(`^${got.length} fields are invalid`));
  return e.details;
}

// Decodes a whsec_ secret and returns its key bytes; fails on any other shape.
export function secretBytes(secret) {
  assert.equal(typeof secret, 'string');
  const m = secret.match(/^whsec_([A-Za-z0-9+/]+={0,2})$/);
  assert.ok(m, `not a whsec_ secret: ${secret}`);
  assert.equal(m[1].length % 4, 0, 'base64 must be padded');
  const buf = Buffer.from(m[1], 'base64');
  assert.equal(buf.toString('base64'), m[1], 'must be canonical standard base64');
  return buf;
}
