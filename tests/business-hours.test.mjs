// Business hours routing: a number with weekly hours in an IANA zone (and dated exceptions)
// rings its owner first during hours and lets the AI answer directly after hours, with the
// after-hours agent it names. Signed Twilio incoming-call webhooks in workerd; hours are built
// relative to the current time in the number's zone, so each case is open or closed "now".

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, sqlText } from './harness.mjs';
import { twilioIncoming, callRow } from './live-setup.mjs';
import { twilioSid } from './fakes/twilio.mjs';
import { skipBrowser, launchBrowser, newPage } from './browser.mjs';

const ZONE = 'America/New_York';
const OWNER = '+15557654321';
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

let worker, dayAgent, nightAgent, otherKey;
/** Calls by how they were routed, for the dashboard's test. */
const routedCalls = {};

before(async () => {
  worker = await startWorker();
  dayAgent = await agent('Day desk');
  nightAgent = await agent('Night line');
  const tenant = await worker.api('POST', '/api/v1/tenants', { name: 'Other' });
  assert.equal(tenant.status, 201, tenant.text);
  otherKey = tenant.body.api_key.key;
});
after(async () => {
  await worker?.stop();
});

async function agent(name, key) {
  const res = await worker.api('POST', '/api/v1/agents', { name, system_prompt: 'Be brief.' }, key ? { key } : {});
  assert.equal(res.status, 201, res.text);
  return res.body.id;
}

async function number(fields) {
  const res = await worker.api('POST', '/api/v1/numbers', { agent_id: dayAgent, owner_phone: OWNER, ring_owner_first: true, ...fields });
  assert.equal(res.status, 201, res.text);
  return res.body;
}

/** Now on the clocks of `zone`: {date: 'YYYY-MM-DD', day: 'mon'…, minutes after midnight}. */
function localNow(zone, at = new Date()) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone: zone, hourCycle: 'h23', weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
  }).formatToParts(at).map((p) => [p.type, p.value]));
  return { date: `${parts.year}-${parts.month}-${parts.day}`, day: parts.weekday.toLowerCase(), minutes: Number(parts.hour) * 60 + Number(parts.minute) };
}

const hhmm = (m) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;

/** Weekly hours with one range from `from` to `to` minutes relative to now in `zone` (it may run overnight). */
function weeklyAround(zone, from, to) {
  const now = localNow(zone);
  let start = now.minutes + from;
  let day = DAYS.indexOf(now.day);
  while (start < 0) { start += 1440; day = (day + 6) % 7; }
  while (start >= 1440) { start -= 1440; day = (day + 1) % 7; }
  return { [DAYS[day]]: [[hhmm(start), hhmm((start + to - from) % 1440)]] };
}

const ALL_WEEK = Object.fromEntries(DAYS.map((d) => [d, [['00:00', '24:00']]]));

/** The owner-first <Dial> in `xml`: {owner, callId}; undefined when the markup dials nobody. */
function ownerDial(xml) {
  const m = /<Dial [^>]*action="([^"]+)"[^>]*><Number>([^<]+)<\/Number><\/Dial>/.exec(xml);
  if (!m) return undefined;
  return { owner: m[2], callId: new URL(m[1].replaceAll('&amp;', '&')).searchParams.get('call_id') };
}

async function routingEvents(callId) {
  const rows = await worker.d1(`SELECT kind, source, detail FROM call_events WHERE call_id = ${sqlText(callId)} AND kind = 'routing'`);
  return rows.map((r) => ({ ...r, detail: JSON.parse(r.detail) }));
}

async function apiCall(callId) {
  const res = await worker.api('GET', `/api/v1/calls/${callId}`);
  assert.equal(res.status, 200, res.text);
  return res.body;
}

test('open now: the owner is rung first, and the call records "open"', async () => {
  const hours = { time_zone: ZONE, weekly: weeklyAround(ZONE, -60, 60) };
  const n = await number({ number: '+15550004001', hours, after_hours_agent_id: nightAgent });
  assert.equal(n.after_hours_agent_id, nightAgent);
  assert.equal(n.hours.time_zone, ZONE);
  assert.deepEqual(Object.keys(n.hours.weekly).sort(), [...DAYS].sort(), 'stored with every day named');
  assert.deepEqual(n.hours.exceptions, []);

  const callSid = twilioSid('CA');
  const markup = await twilioIncoming(worker, n.number, { params: { CallSid: callSid } });
  const dial = ownerDial(markup.xml);
  assert.ok(dial, markup.xml);
  assert.equal(dial.owner, OWNER);
  assert.equal(markup.stream, undefined, 'no stream before the owner had a chance');
  const row = await callRow(worker, dial.callId);
  assert.equal(row.routing, 'open');
  assert.equal(row.agent_id, dayAgent, 'the day agent takes the call if the owner does not');
  assert.deepEqual((await apiCall(dial.callId)).routing, { decision: 'open', reason: 'open' });
  const [event, ...more] = await routingEvents(dial.callId);
  assert.equal(more.length, 0);
  assert.equal(event.source, 'webhook:twilio');
  assert.deepEqual(event.detail, { decision: 'open', reason: 'open', agent_id: dayAgent, ring_owner_first: true });

  // Twilio retries the webhook: the same call, routed once.
  const again = await twilioIncoming(worker, n.number, { params: { CallSid: callSid } });
  assert.equal(ownerDial(again.xml)?.callId, dial.callId);
  assert.equal((await routingEvents(dial.callId)).length, 1, 'one routing entry for a retried webhook');

  // The same wall-clock hours in a zone half a day away are closed now (PATCH: only hours change).
  const patched = await worker.api('PATCH', `/api/v1/numbers/${n.id}`, { hours: { ...hours, time_zone: 'Asia/Kolkata' } });
  assert.equal(patched.status, 200, patched.text);
  assert.equal(patched.body.hours.time_zone, 'Asia/Kolkata');
  assert.equal(patched.body.owner_phone, OWNER, 'fields left out keep their values');
  const later = await twilioIncoming(worker, n.number);
  assert.equal(ownerDial(later.xml), undefined, later.xml);
  assert.equal((await callRow(worker, later.callId)).routing, 'closed_weekly');
});

test('closed now: the after-hours agent answers directly, no owner ring', async () => {
  const n = await number({ number: '+15550004002', hours: { time_zone: ZONE, weekly: weeklyAround(ZONE, 60, 180) }, after_hours_agent_id: nightAgent });
  const markup = await twilioIncoming(worker, n.number);
  assert.equal(ownerDial(markup.xml), undefined, 'the owner is not rung after hours');
  assert.match(markup.xml, /<Connect><Stream url="ws:\/\/127\.0\.0\.1:\d+\/media\/twilio\/call_[0-9a-z]+">/);
  assert.match(markup.token, /^stk_/);
  const row = await callRow(worker, markup.callId);
  assert.equal(row.agent_id, nightAgent);
  assert.equal(row.routing, 'closed_weekly');
  const call = await apiCall(markup.callId);
  assert.deepEqual(call.routing, { decision: 'closed', reason: 'closed_weekly' });
  routedCalls.closed = markup.callId;
  assert.equal(call.agent_id, nightAgent);
  const [event] = await routingEvents(markup.callId);
  assert.deepEqual(event.detail, { decision: 'closed', reason: 'closed_weekly', agent_id: nightAgent, ring_owner_first: false });

  // Without an after-hours agent the number's own agent answers after hours.
  const cleared = await worker.api('PATCH', `/api/v1/numbers/${n.id}`, { after_hours_agent_id: null });
  assert.equal(cleared.status, 200, cleared.text);
  assert.equal(cleared.body.after_hours_agent_id, null);
  const own = await twilioIncoming(worker, n.number);
  assert.ok(own.stream, own.xml);
  assert.equal((await callRow(worker, own.callId)).agent_id, dayAgent);
});

test('a holiday exception closes a number open all week', async () => {
  const today = localNow(ZONE).date;
  // Tomorrow too, in case the zone's midnight passes between here and the webhook.
  const tomorrow = localNow(ZONE, new Date(Date.now() + 3_600_000 * 3)).date;
  const exceptions = [...new Set([today, tomorrow])].map((date) => ({ date, closed: true }));
  const n = await number({ number: '+15550004003', hours: { time_zone: ZONE, weekly: ALL_WEEK, exceptions } });
  const markup = await twilioIncoming(worker, n.number);
  assert.equal(ownerDial(markup.xml), undefined, markup.xml);
  assert.ok(markup.stream, markup.xml);
  const row = await callRow(worker, markup.callId);
  assert.equal(row.routing, 'closed_exception');
  assert.equal(row.agent_id, dayAgent);
  assert.deepEqual((await apiCall(markup.callId)).routing, { decision: 'closed', reason: 'closed_exception' });

  // Clearing the exceptions opens it again: the owner is rung.
  const reopened = await worker.api('PATCH', `/api/v1/numbers/${n.id}`, { hours: { time_zone: ZONE, weekly: ALL_WEEK } });
  assert.equal(reopened.status, 200, reopened.text);
  assert.ok(ownerDial((await twilioIncoming(worker, n.number)).xml));
});

test('a number without hours rings the owner as before and records "no_hours"', async () => {
  const n = await number({ number: '+15550004004' });
  assert.equal(n.hours, null);
  assert.equal(n.after_hours_agent_id, null);
  const dial = ownerDial((await twilioIncoming(worker, n.number)).xml);
  assert.ok(dial);
  assert.equal((await callRow(worker, dial.callId)).routing, 'no_hours');
  assert.deepEqual((await apiCall(dial.callId)).routing, { decision: 'open', reason: 'no_hours' });
  routedCalls.noHours = dial.callId;
});

test('the call detail page shows how the call was routed', { skip: skipBrowser }, async () => {
  assert.ok(routedCalls.closed && routedCalls.noHours, 'the routing tests ran first');
  const browser = await launchBrowser();
  try {
    const page = await newPage(browser, worker);
    for (const [callId, text] of [[routedCalls.closed, 'closed (weekly hours)'], [routedCalls.noHours, 'open (no hours set)']]) {
      await page.goto(`${worker.url}/#/calls/${callId}`);
      await page.getByRole('heading', { name: `Call ${callId}` }).waitFor();
      assert.match(await page.locator('dl.facts').innerText(), new RegExp(`Routing\\s+${text.replace(/[()]/g, '\\$&')}`));
    }
  } finally {
    await browser.close();
  }
});

function assertInvalid(res, expected) {
  assert.equal(res.status, 422, res.text);
  assert.equal(res.body.error.code, 'invalid_fields');
  const got = res.body.error.details.map((d) => [d.field, d.code]);
  assert.deepEqual(got, expected, res.text);
}

test('invalid hours and foreign after-hours agents are 422 with field errors', async () => {
  const base = { number: '+15550004005', agent_id: dayAgent };
  const post = (fields) => worker.api('POST', '/api/v1/numbers', { ...base, ...fields });
  assertInvalid(await post({ hours: { time_zone: 'America/Gotham', weekly: {} } }), [['hours.time_zone', 'invalid_time_zone']]);
  assertInvalid(await post({ hours: { time_zone: ZONE, weekly: { mon: [['09:00', '12:00'], ['11:00', '14:00']], tue: [['9am', '5pm']], someday: [] } } }), [
    ['hours.weekly.mon', 'overlapping_ranges'],
    ['hours.weekly.someday', 'unknown_field'],
    ['hours.weekly.tue[0]', 'invalid_time'],
  ]);
  // Huge inputs are refused by count, not stored.
  const ranges = Array.from({ length: 9 }, (_, h) => [hhmm(h * 60), hhmm(h * 60 + 30)]);
  assertInvalid(await post({ hours: { time_zone: ZONE, weekly: { mon: ranges } } }), [['hours.weekly.mon', 'too_many']]);
  const holidays = Array.from({ length: 101 }, (_, i) => ({ date: new Date(Date.UTC(2027, 0, 1 + i)).toISOString().slice(0, 10), closed: true }));
  assertInvalid(await post({ hours: { time_zone: ZONE, weekly: {}, exceptions: holidays } }), [['hours.exceptions', 'too_many']]);
  assertInvalid(await post({ hours: { time_zone: ZONE, weekly: {}, exceptions: [{ date: '2026-02-30', closed: true }, { date: '2026-12-25', closed: false }] } }), [
    ['hours.exceptions[0].date', 'invalid_date'],
    ['hours.exceptions[1]', 'invalid_value'],
  ]);
  assertInvalid(await post({ hours: '9-5' }), [['hours', 'invalid_type']]);
  // Another tenant's agent is as unknown as a made-up one.
  const foreign = await agent('Not yours', otherKey);
  assertInvalid(await post({ after_hours_agent_id: foreign }), [['after_hours_agent_id', 'unknown_agent']]);
  assertInvalid(await post({ after_hours_agent_id: 'agt_nope' }), [['after_hours_agent_id', 'unknown_agent']]);
  const listed = await worker.api('GET', '/api/v1/numbers');
  assert.ok(!listed.body.data.some((x) => x.number === base.number), 'nothing refused was stored');

  // A refused PATCH leaves the number as it was.
  const n = await number({ number: '+15550004006', hours: { time_zone: ZONE, weekly: ALL_WEEK } });
  assertInvalid(await worker.api('PATCH', `/api/v1/numbers/${n.id}`, { hours: { time_zone: ZONE, weekly: { fri: [['22:00', '03:00']], sat: [['02:00', '04:00']] } } }), [['hours.weekly.fri', 'overlapping_ranges']]);
  assertInvalid(await worker.api('PATCH', `/api/v1/numbers/${n.id}`, { after_hours_agent_id: foreign }), [['after_hours_agent_id', 'unknown_agent']]);
  const stored = await worker.api('GET', `/api/v1/numbers/${n.id}`);
  assert.deepEqual(stored.body.hours, n.hours);
  assert.equal(stored.body.after_hours_agent_id, null);
});

test('an agent answering after hours cannot be deleted', async () => {
  const night = await agent('Overnight');
  const n = await number({ number: '+15550004007', hours: { time_zone: ZONE, weekly: {} }, after_hours_agent_id: night });
  const refused = await worker.api('DELETE', `/api/v1/agents/${night}`);
  assert.equal(refused.status, 409, refused.text);
  assert.equal(refused.body.error.code, 'agent_in_use');
  assert.match(refused.body.error.message, /\+15550004007/);
  assert.equal((await worker.api('PATCH', `/api/v1/numbers/${n.id}`, { after_hours_agent_id: null })).status, 200);
  assert.equal((await worker.api('DELETE', `/api/v1/agents/${night}`)).status, 200);
});
