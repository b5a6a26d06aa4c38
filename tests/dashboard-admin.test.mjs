// The dashboard's admin jobs in headless Chromium against the real worker: API keys (created
// with a role, shown once with a working copy button, revoked), what each role is offered
// (controls it cannot use disabled with the reason, pages it cannot use not offered), tenants
// for the bootstrap key, the audit log with its filters, no "Log out" on the login page and the
// favicon. Also the API behind them: GET /api/v1/me and the audit log's actor / time filters.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, eventually, sleep, TEST_VARS, UNDIALLED_TWILIO } from './harness.mjs';
import { skipBrowser, launchBrowser, newPage as openPage, shot, shotBoth } from './browser.mjs';

const ADMIN = TEST_VARS.ADMIN_API_KEY;

let worker;
let browser;
let agent;
let endpoint;
/** Keys created through the UI: {operate, read} → {id, key}. */
const made = {};

before(async () => {
  [worker, browser] = await Promise.all([
    startWorker({ vars: { DEFAULT_FROM_NUMBER: '+15017122661', ...UNDIALLED_TWILIO } }),
    skipBrowser ? null : launchBrowser(),
  ]);
  const created = await worker.api('POST', '/api/v1/agents', {
    name: 'Ava', system_prompt: 'You confirm appointments.', first_message: 'Hi, this is Ava.',
  });
  assert.equal(created.status, 201, created.text);
  agent = created.body;
  const ep = await worker.api('POST', '/api/v1/endpoints', { url: 'https://hooks.example.com/in', event_types: null });
  assert.equal(ep.status, 201, ep.text);
  endpoint = ep.body;
});

after(async () => {
  await browser?.close();
  await worker?.stop();
});

const newPage = (opts) => openPage(browser, worker, opts);

test('GET /api/v1/me says which key is calling: id, role, tenant, bootstrap', async () => {
  const boot = await worker.api('GET', '/api/v1/me');
  assert.equal(boot.status, 200, boot.text);
  assert.deepEqual(boot.body, { key_id: null, role: 'admin', tenant_id: 'ten_default', bootstrap: true });
  const viewer = await worker.api('POST', '/api/v1/api-keys', { name: 'me-viewer', role: 'viewer' });
  const me = await worker.api('GET', '/api/v1/me', undefined, { key: viewer.body.key });
  assert.equal(me.status, 200, me.text);
  assert.deepEqual(me.body, { key_id: viewer.body.id, role: 'viewer', tenant_id: 'ten_default', bootstrap: false });
  assert.equal((await worker.fetch('/api/v1/me')).status, 401);
  await worker.api('DELETE', `/api/v1/api-keys/${viewer.body.id}`);
  assert.equal((await worker.api('GET', '/api/v1/me', undefined, { key: viewer.body.key })).status, 401);
});

test('the audit log narrows by actor and time range; a malformed time is a 422 naming it', async () => {
  const operator = (await worker.api('POST', '/api/v1/api-keys', { name: 'audit-operator', role: 'operator' })).body;
  const all = (await worker.api('GET', '/api/v1/audit-log?limit=200')).body.data;
  assert.ok(all.some((e) => e.actor === 'admin') && all.some((e) => e.action === 'api_key.create'));

  // actor: the bootstrap key's entries are `admin`; a key's are its id.
  const admin = await worker.api('GET', '/api/v1/audit-log?actor=admin&limit=200');
  assert.equal(admin.status, 200, admin.text);
  assert.ok(admin.body.data.length > 0 && admin.body.data.every((e) => e.actor === 'admin'));
  const created = (await worker.api('POST', '/api/v1/api-keys', { name: 'made-by-operator', role: 'viewer' }, { key: operator.key }));
  assert.equal(created.status, 403, 'an operator cannot create keys');
  const none = await worker.api('GET', `/api/v1/audit-log?actor=${operator.id}`);
  assert.deepEqual(none.body.data, []);

  // from/to: entries at or after `from`, before `to` (a few ms apart, so no entry shares t0).
  await sleep(5);
  const t0 = new Date().toISOString();
  await sleep(5);
  const later = (await worker.api('PATCH', `/api/v1/endpoints/${endpoint.id}`, { description: 'after t0' })).body;
  assert.equal(later.description, 'after t0');
  const since = await worker.api('GET', `/api/v1/audit-log?from=${encodeURIComponent(t0)}`);
  assert.deepEqual(since.body.data.map((e) => e.action), ['endpoint.update']);
  const until = await worker.api('GET', `/api/v1/audit-log?to=${encodeURIComponent(t0)}&limit=200`);
  assert.ok(until.body.data.length > 0 && until.body.data.every((e) => Date.parse(e.at) < Date.parse(t0)));
  assert.equal(since.body.data.length + until.body.data.length, (await worker.api('GET', '/api/v1/audit-log?limit=200')).body.data.length);
  // Empty filters are no filters, as in the other lists.
  const empty = await worker.api('GET', '/api/v1/audit-log?actor=&action=&from=&to=&limit=200');
  assert.equal(empty.body.data.length, since.body.data.length + until.body.data.length);

  const bad = await worker.api('GET', '/api/v1/audit-log?from=yesterday&to=2026-01-01T00:00:00');
  assert.equal(bad.status, 422, bad.text);
  assert.equal(bad.body.error.code, 'invalid_fields');
  assert.deepEqual(bad.body.error.details.map((d) => [d.field, d.code]), [['from', 'invalid_time'], ['to', 'invalid_time']]);
  await worker.api('DELETE', `/api/v1/api-keys/${operator.id}`);
});

test('the login page has no Log out button, not even before the script runs; the favicon is served', { skip: skipBrowser }, async () => {
  // First paint: the HTML and CSS alone (no script) show no Log out.
  const bare = await browser.newContext({ javaScriptEnabled: false });
  const first = await bare.newPage();
  await first.goto(`${worker.url}/`);
  assert.equal(await first.locator('#logout').isVisible(), false);
  assert.equal(await first.locator('#logout').evaluate((b) => getComputedStyle(b).display), 'none');
  await bare.close();

  const page = await newPage({ login: false });
  await page.goto(`${worker.url}/`);
  await page.getByRole('heading', { name: 'Log in' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Log out' }).count(), 0, 'no Log out button in the accessibility tree');
  // Not reachable with the keyboard either.
  const focusable = [];
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press('Tab');
    focusable.push(await page.evaluate(() => document.activeElement?.id || document.activeElement?.textContent?.trim()));
  }
  assert.ok(!focusable.includes('logout'), focusable.join(', '));
  const { overflow } = await shotBoth(page, 'login');
  assert.ok(overflow <= 1, `login overflows by ${overflow}px`);

  // Logged in it is there; logging out hides it again.
  await page.getByLabel('API key').fill(ADMIN);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Calls', level: 2 }).waitFor();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Log in' }).waitFor();
  assert.equal(await page.locator('#logout').isVisible(), false);

  // The favicon: our own SVG, linked from the page.
  assert.equal(await page.locator('link[rel="icon"]').getAttribute('href'), '/favicon.svg');
  const icon = await worker.fetch('/favicon.svg');
  assert.equal(icon.status, 200);
  assert.match(icon.headers.get('content-type'), /^image\/svg\+xml/);
  const svg = await icon.text();
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.doesNotMatch(svg, /href=|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'no external references');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

/** Creates a key in the open keys page; returns {id, key} after checking it is shown once and copied. */
async function createKey(page, name, role) {
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Role').selectOption(role);
  await page.getByRole('button', { name: 'Create key' }).click();
  const notice = page.locator('#key-notice .secret-once').filter({ hasText: `Key “${name}” created` });
  await notice.waitFor();
  const secret = await notice.getByLabel('API key').inputValue();
  assert.match(secret, /^pa_live_[a-z0-9]{26}$/);
  await notice.getByRole('button', { name: 'Copy' }).click();
  await notice.getByRole('status').filter({ hasText: 'Copied.' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  const listed = (await worker.api('GET', '/api/v1/api-keys?limit=100')).body.data.find((k) => k.name === name);
  assert.equal(listed.role, role);
  assert.equal(secret.startsWith(listed.prefix), true);
  // The row is in the table without the secret.
  const row = page.locator(`#keys-list tr[data-id="${listed.id}"]`);
  await row.waitFor();
  assert.ok(!(await row.innerText()).includes(secret));
  return { id: listed.id, key: secret };
}

test('API keys: create an operate and a read key (shown once, copied), then the list', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: worker.url });
  await page.getByRole('link', { name: 'API keys' }).click();
  await page.getByRole('heading', { name: 'API keys', level: 2 }).waitFor();
  made.operate = await createKey(page, 'ops console', 'operator');
  made.read = await createKey(page, 'read-only board', 'viewer');
  assert.equal((await worker.api('GET', '/api/v1/me', undefined, { key: made.operate.key })).body.role, 'operator');
  assert.equal((await worker.api('GET', '/api/v1/me', undefined, { key: made.read.key })).body.role, 'viewer');
  const { overflow } = await shotBoth(page, 'keys');
  assert.ok(overflow <= 1, `keys page overflows by ${overflow}px`);

  // Gone once the page is left: neither in the DOM nor back when returning.
  await page.getByRole('link', { name: 'Calls' }).click();
  await page.getByRole('heading', { name: 'Calls', level: 2 }).waitFor();
  await page.getByRole('link', { name: 'API keys' }).click();
  await page.locator('#keys-list').waitFor();
  const html = await page.content();
  assert.ok(!html.includes(made.operate.key) && !html.includes(made.read.key), 'secrets are not shown again');
  assert.equal(await page.locator('.secret-once').count(), 0);

  // A name the API refuses shows its field error.
  await page.getByLabel('Name').fill(' ');
  await page.getByRole('button', { name: 'Create key' }).click();
  await page.locator('.error-box').filter({ hasText: 'name' }).waitFor();
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a read key: operate and administer controls are disabled with the reason, admin pages not offered', { skip: skipBrowser }, async () => {
  assert.ok(made.read, 'the keys test made a read key');
  const page = await newPage({ key: made.read.key });
  assert.equal(await page.locator('#whoami').innerText(), 'viewer key');
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const hidden of ['API keys', 'Tenants', 'Audit log', 'Schedule a call']) {
    assert.equal(await nav.getByRole('link', { name: hidden }).count(), 0, `${hidden} is not offered`);
  }
  assert.ok(await nav.getByRole('link', { name: 'Calls' }).isVisible());

  // Calls: the "Schedule a call" action is inert and says why.
  const schedule = page.locator('.page-header [data-needs="operate"]');
  assert.equal(await schedule.getAttribute('aria-disabled'), 'true');
  assert.equal(await schedule.getAttribute('href'), null);
  assert.match(await schedule.getAttribute('title'), /^Needs an operate key \(operator or admin\); this is a viewer key\.$/);
  assert.equal(await page.getByRole('link', { name: 'Schedule a call' }).count(), 0);

  // Endpoints: the create form is disabled with a visible note; row buttons are disabled.
  await nav.getByRole('link', { name: 'Endpoints' }).click();
  await page.getByRole('heading', { name: 'Endpoints', level: 2 }).waitFor();
  const form = page.locator('form[data-needs="administer"]');
  assert.match(await form.locator('.needs-note').innerText(), /Needs an admin key; this is a viewer key\./);
  assert.equal(await page.getByRole('button', { name: 'Add endpoint' }).isDisabled(), true);
  assert.equal(await page.getByLabel('URL').isDisabled(), true);
  const pause = page.getByRole('button', { name: `Pause ${endpoint.url}` });
  assert.equal(await pause.isDisabled(), true);
  assert.match(await pause.getAttribute('title'), /Needs an admin key/);
  await shot(page, 'endpoints-viewer');
  // Disabled for a reason: the API refuses the viewer too.
  assert.equal((await worker.api('PATCH', `/api/v1/endpoints/${endpoint.id}`, { status: 'paused' }, { key: made.read.key })).status, 403);

  // Deliveries: redrive is disabled.
  await nav.getByRole('link', { name: 'Deliveries' }).click();
  await page.locator('#redrive').waitFor();
  assert.equal(await page.locator('#redrive').isDisabled(), true);

  // Keys page by its address: says what it needs instead of failing.
  await page.goto(`${worker.url}/#/keys`);
  await page.getByRole('heading', { name: 'API keys', level: 2 }).waitFor();
  assert.equal(await page.getByRole('note').innerText(), 'This page needs an admin key; this is a viewer key.');
  assert.equal(await page.getByRole('button', { name: 'Create key' }).count(), 0);
  await page.goto(`${worker.url}/#/schedule`);
  await page.getByRole('note').filter({ hasText: 'This page needs an operate key' }).waitFor();
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('an operate key schedules a call but is not offered keys, tenants or the audit log', { skip: skipBrowser }, async () => {
  assert.ok(made.operate, 'the keys test made an operate key');
  const page = await newPage({ key: made.operate.key });
  assert.equal(await page.locator('#whoami').innerText(), 'operator key');
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const hidden of ['API keys', 'Tenants', 'Audit log']) assert.equal(await nav.getByRole('link', { name: hidden }).count(), 0, hidden);
  await page.locator('.page-header').getByRole('link', { name: 'Schedule a call' }).click();
  await page.getByRole('heading', { name: 'Schedule a call' }).waitFor();
  await page.getByLabel('Phone number to call').fill('+15550004444');
  await page.getByLabel('Agent').selectOption(agent.id);
  await page.getByLabel('Provider').selectOption('twilio');
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  await page.getByLabel('Date and time').fill(`${tomorrow}T10:15`);
  await page.getByRole('button', { name: 'Schedule call' }).click();
  const confirmation = page.locator('#schedule-confirmation');
  await confirmation.waitFor();
  const callId = await confirmation.getByRole('link').innerText();
  const call = await worker.api('GET', `/api/v1/calls/${callId}`);
  assert.equal(call.status, 200);
  assert.equal(call.body.to, '+15550004444');
  const audit = await worker.api('GET', `/api/v1/audit-log?actor=${made.operate.id}`);
  assert.ok(audit.body.data.some((e) => e.resource_id === callId), 'scheduled by the operate key');

  // Endpoint changes need an admin: the form is disabled for this key too.
  await nav.getByRole('link', { name: 'Endpoints' }).click();
  await page.getByRole('heading', { name: 'Endpoints', level: 2 }).waitFor();
  assert.equal(await page.locator('form .needs-note').innerText(), 'Needs an admin key; this is an operator key.');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('revoking a key in the UI: it gets 401 from the API at once', { skip: skipBrowser }, async () => {
  assert.ok(made.read, 'the keys test made a read key');
  const page = await newPage();
  await page.getByRole('link', { name: 'API keys' }).click();
  const row = page.locator(`#keys-list tr[data-id="${made.read.id}"]`);
  await row.waitFor();
  let question = '';
  page.once('dialog', (d) => {
    question = d.message();
    d.accept();
  });
  await row.getByRole('button', { name: 'Revoke read-only board' }).click();
  await row.locator('.badge-revoked').waitFor();
  assert.match(question, /Revoke “read-only board”/);
  assert.equal(await row.getByRole('button', { name: /Revoke/ }).count(), 0);
  const refused = await worker.api('GET', '/api/v1/calls', undefined, { key: made.read.key });
  assert.equal(refused.status, 401);
  const stored = (await worker.api('GET', `/api/v1/api-keys/${made.read.id}`)).body;
  assert.ok(stored.revoked_at);

  // Declining the confirmation revokes nothing.
  const operateRow = page.locator(`#keys-list tr[data-id="${made.operate.id}"]`);
  page.once('dialog', (d) => d.dismiss());
  await operateRow.getByRole('button', { name: 'Revoke ops console' }).click();
  assert.equal((await worker.api('GET', '/api/v1/me', undefined, { key: made.operate.key })).status, 200);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('the bootstrap key sees tenants and creates one; its first admin key works and is not offered tenants', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: worker.url });
  assert.equal(await page.locator('#whoami').innerText(), 'bootstrap admin key');
  await page.getByRole('link', { name: 'Tenants' }).click();
  await page.getByRole('heading', { name: 'Tenants', level: 2 }).waitFor();
  await page.getByLabel('Name').fill('Globex');
  await page.getByRole('button', { name: 'Create tenant' }).click();
  const notice = page.locator('#tenant-notice .secret-once');
  await notice.waitFor();
  const key = await notice.getByLabel('Admin key of Globex').inputValue();
  await notice.getByRole('button', { name: 'Copy' }).click();
  await notice.getByRole('status').filter({ hasText: 'Copied.' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);
  const tenants = (await worker.api('GET', '/api/v1/tenants?limit=200')).body.data;
  const globex = tenants.find((t) => t.name === 'Globex');
  assert.ok(globex, 'the API holds the tenant');
  await page.locator('#tenants-list').getByText(globex.id).waitFor();
  const me = await worker.api('GET', '/api/v1/me', undefined, { key });
  assert.deepEqual({ ...me.body, key_id: undefined }, { key_id: undefined, role: 'admin', tenant_id: globex.id, bootstrap: false });
  const { overflow } = await shotBoth(page, 'tenants');
  assert.ok(overflow <= 1, `tenants page overflows by ${overflow}px`);
  assert.deepEqual(page.errors, []);
  await page.context().close();

  // The tenant's admin: keys and audit log, but no tenants.
  const theirs = await newPage({ key });
  const nav = theirs.getByRole('navigation', { name: 'Main' });
  assert.ok(await nav.getByRole('link', { name: 'API keys' }).isVisible());
  assert.equal(await nav.getByRole('link', { name: 'Tenants' }).count(), 0);
  assert.deepEqual(theirs.errors, []);
  await theirs.context().close();
});

test('the audit log shows the key creations and the revocation; filters narrow it', { skip: skipBrowser }, async () => {
  assert.ok(made.read && made.operate, 'the keys tests ran');
  const page = await newPage();
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.getByRole('heading', { name: 'Audit log', level: 2 }).waitFor();
  const list = page.locator('#audit-list');
  const rowsOf = async () => list.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => tr.innerText));
  const all = await rowsOf();
  assert.ok(all.some((r) => r.includes('api_key.create') && r.includes(made.operate.id)), 'operate key creation');
  assert.ok(all.some((r) => r.includes('api_key.create') && r.includes(made.read.id)), 'read key creation');
  assert.ok(all.some((r) => r.includes('api_key.revoke') && r.includes(made.read.id)), 'revocation');
  assert.ok(all.some((r) => r.includes('ADMIN_API_KEY')), 'the bootstrap key is named as the actor');
  const { overflow } = await shotBoth(page, 'audit-log');
  assert.ok(overflow <= 1, `audit log overflows by ${overflow}px`);

  // Action: only the revocation(s).
  await page.getByLabel('Action').fill('api_key.revoke');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForURL(/action=api_key.revoke/);
  const api = (await worker.api('GET', '/api/v1/audit-log?action=api_key.revoke&limit=200')).body.data;
  let revokes = [];
  await eventually(async () => {
    revokes = await rowsOf();
    return revokes.length === api.length && revokes.every((r) => r.includes('api_key.revoke'));
  }, { message: 'only revocations listed' });
  assert.ok(revokes.length < all.length);
  assert.ok(revokes.some((r) => r.includes(made.read.id)));

  // Actor + resource id: the operate key's scheduling, nothing else.
  await page.getByRole('button', { name: 'Clear' }).click();
  await page.waitForURL(/#\/audit-log$/);
  await page.getByLabel('Actor').selectOption(made.operate.id);
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForURL(new RegExp(`actor=${made.operate.id}`));
  let byOperate = [];
  await eventually(async () => {
    byOperate = await rowsOf();
    return byOperate.length >= 1 && byOperate.every((r) => r.includes('ops console'));
  }, { message: 'only the operate key\'s entries' });
  assert.ok(byOperate.every((r) => r.includes('call.schedule')), 'the operate key only scheduled');

  // Time range: an empty window in the future.
  await page.getByLabel('From').fill('2099-01-01T00:00');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByText('No entries match these filters.').waitFor();
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a list longer than a page: "Load more" appends the next page; creating a tenant lists from the first page again', { skip: skipBrowser }, async () => {
  for (let i = 0; i < 52; i++) {
    const res = await worker.api('POST', '/api/v1/tenants', { name: `Paged ${String(i).padStart(2, '0')}` });
    assert.equal(res.status, 201, res.text);
  }
  const total = () => worker.api('GET', '/api/v1/tenants?limit=200').then((r) => r.body.data.length);
  const count = await total();
  assert.ok(count > 50 && count <= 100, `${count} tenants: two pages`);
  const page = await newPage();
  await page.getByRole('link', { name: 'Tenants' }).click();
  const list = page.locator('#tenants-list');
  const caption = list.locator('caption');
  await caption.filter({ hasText: '50 tenants (more below)' }).waitFor();
  assert.equal(await list.locator('tbody tr').count(), 50);
  await list.getByRole('button', { name: 'Load more' }).click();
  await caption.filter({ hasText: new RegExp(`^${count} tenants$`) }).waitFor();
  assert.equal(await list.locator('tbody tr').count(), count);
  const ids = await list.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  assert.equal(new Set(ids).size, count, 'no tenant twice');
  assert.equal(await list.getByRole('button', { name: 'Load more' }).count(), 0);

  await page.getByLabel('Name').fill('After paging');
  await page.getByRole('button', { name: 'Create tenant' }).click();
  await page.locator('#tenant-notice .secret-once').waitFor();
  await caption.filter({ hasText: '50 tenants (more below)' }).waitFor();
  assert.equal(await total(), count + 1);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
