// Text messages end to end in workerd: the suppression list (tenant-scoped, roles, idempotent).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './harness.mjs';

let worker, other, viewer, operator;

before(async () => {
  worker = await startWorker();
  const tenant = await worker.api('POST', '/api/v1/tenants', { name: 'Other' });
  assert.equal(tenant.status, 201, tenant.text);
  other = tenant.body.api_key.key;
  viewer = (await worker.api('POST', '/api/v1/api-keys', { name: 'ro', role: 'viewer' })).body.key;
  operator = (await worker.api('POST', '/api/v1/api-keys', { name: 'ops', role: 'operator' })).body.key;
});
after(async () => {
  await worker?.stop();
});

test('suppressions: operators add and lift, idempotent, paged, tenant-scoped; viewers only read', async () => {
  const phone = '+14155550123';
  const added = await worker.api('POST', '/api/v1/suppressions', { phone }, { key: operator });
  assert.equal(added.status, 201, added.text);
  assert.equal(added.body.phone, phone);
  assert.equal(added.body.source, 'operator');
  assert.match(added.body.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const again = await worker.api('POST', '/api/v1/suppressions', { phone }, { key: operator });
  assert.equal(again.status, 200, again.text);
  assert.deepEqual(again.body, added.body);

  for (const body of [{ phone: '4155550123' }, {}, { phone: 5 }]) {
    const bad = await worker.api('POST', '/api/v1/suppressions', body, { key: operator });
    assert.equal(bad.status, 422, bad.text);
    assert.equal(bad.body.error.details[0].field, 'phone');
  }

  const denied = await worker.api('POST', '/api/v1/suppressions', { phone: '+14155550124' }, { key: viewer });
  assert.equal(denied.status, 403, denied.text);
  assert.equal((await worker.api('DELETE', `/api/v1/suppressions/${phone}`, undefined, { key: viewer })).status, 403);
  const seen = await worker.api('GET', '/api/v1/suppressions', undefined, { key: viewer });
  assert.equal(seen.status, 200, seen.text);
  assert.deepEqual(seen.body.data.map((s) => s.phone), [phone]);

  // Another tenant sees none of it and cannot lift it; its own entry for the same number is its own.
  const theirs = await worker.api('GET', '/api/v1/suppressions', undefined, { key: other });
  assert.deepEqual(theirs.body.data, []);
  const lift = await worker.api('DELETE', `/api/v1/suppressions/${encodeURIComponent(phone)}`, undefined, { key: other });
  assert.equal(lift.status, 404, lift.text);
  assert.equal((await worker.api('POST', '/api/v1/suppressions', { phone }, { key: other })).status, 201);
  assert.equal((await worker.api('GET', '/api/v1/suppressions')).body.data.length, 1);

  // Pages, newest first.
  for (const n of ['+14155550125', '+14155550126']) {
    assert.equal((await worker.api('POST', '/api/v1/suppressions', { phone: n })).status, 201);
  }
  const first = await worker.api('GET', '/api/v1/suppressions?limit=2');
  assert.deepEqual(first.body.data.map((s) => s.phone), ['+14155550126', '+14155550125']);
  const rest = await worker.api('GET', `/api/v1/suppressions?limit=2&cursor=${first.body.next_cursor}`);
  assert.deepEqual(rest.body.data.map((s) => s.phone), [phone]);
  assert.equal(rest.body.next_cursor, null);

  // Lifted with the + as is or encoded; once gone, a 404.
  const gone = await worker.api('DELETE', `/api/v1/suppressions/${encodeURIComponent(phone)}`, undefined, { key: operator });
  assert.equal(gone.status, 200, gone.text);
  assert.deepEqual(gone.body, { id: phone, deleted: true });
  assert.equal((await worker.api('DELETE', `/api/v1/suppressions/${phone}`)).status, 404);
  assert.equal((await worker.api('DELETE', '/api/v1/suppressions/+14155550125')).status, 200);
  assert.equal((await worker.api('GET', '/api/v1/suppressions', undefined, { key: other })).body.data.length, 1);
  const audit = await worker.api('GET', '/api/v1/audit-log');
  assert.ok(audit.body.data.some((e) => e.action === 'suppression.delete'), 'lifting is audited');
});
