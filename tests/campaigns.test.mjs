// Campaigns end to end: a CSV list of a few hundred contacts across three time zones (the window
// is chosen relative to now, so two zones are inside it and one is not), dialled through the
// fake Twilio REST API by the scheduler's tick: pacing (calls per minute, calls in flight),
// nothing outside the window, pause / resume / cancel, overlapping ticks and a worker restart
// on the same state (exactly one dial per contact: the fake counts Calls.json POSTs per `To`),
// invalid rows reported by line, duplicates dialled once, a suppressed number never dialled,
// retries per the agent's policy, results export, campaign.* events, tenant isolation and the
// size limits.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, eventually, sleep } from './harness.mjs';
import { startFakeTwilio, sendTwilioText } from './fakes/twilio.mjs';
import { createNumber } from './live-setup.mjs';

const ACCOUNT_SID = 'AC' + '1'.repeat(32);
const AUTH_TOKEN = 'campaign-token';
const VARS = {
  TWILIO_API_URL: null,
  TWILIO_ACCOUNT_SID: ACCOUNT_SID,
  TWILIO_AUTH_TOKEN: AUTH_TOKEN,
  DEFAULT_FROM_NUMBER: '+15017122661',
  OUTBOUND_CALLS_PER_HOUR: '100000',
};
let worker;
let twilio;
let agent;

const ZONES = { ny: 'America/New_York', chi: 'America/Chicago', tokyo: 'Asia/Tokyo' };

/** Minutes after midnight on `zone`'s clocks now. */
function localMinutes(zone) {
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
    .formatToParts(new Date());
  const get = (t) => Number(parts.find((p) => p.type === t).value);
  return get('hour') * 60 + get('minute');
}
const clock = (m) => {
  const x = ((m % 1440) + 1440) % 1440;
  return `${String(Math.floor(x / 60)).padStart(2, '0')}:${String(x % 60).padStart(2, '0')}`;
};
/** Every day, from two hours before to two hours after now in New York: Chicago (an hour behind)
 * is inside, Tokyo (13 or 14 hours ahead) is not. */
function windowAroundNewYork() {
  const ny = localMinutes(ZONES.ny);
  return { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], from: clock(ny - 120), to: clock(ny + 120) };
}

const dialsTo = (to) => twilio.createRequests.filter((r) => r.fields.To === to).length;
const dialledNumbers = () => twilio.createRequests.map((r) => r.fields.To);
/** Twilio calls not yet ended, by sid. */
const liveSids = () => [...twilio.calls.values()].filter((c) => !['completed', 'no-answer', 'busy', 'failed', 'canceled'].includes(c.status)).map((c) => c.sid);

async function end(sid, status = 'completed') {
  const res = await twilio.sendStatus(sid, status, status === 'completed' ? { CallDuration: '42' } : {});
  assert.equal(res.status, 200, res.text);
  twilio.calls.get(sid).status = status;
}

async function startCampaignWorker(extra = {}) {
  return startWorker({ vars: { ...VARS, TWILIO_API_URL: twilio.url }, ...extra });
}

before(async () => {
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
  worker = await startCampaignWorker();
  const created = await worker.api('POST', '/api/v1/agents', {
    name: 'Campaigner', system_prompt: 'You call customers about their renewal.', first_message: 'Hi!',
    voice: { provider: 'elevenlabs', voice_id: 'voice_1' }, retry: { max_retries: 1, spacing_seconds: 10 },
  });
  assert.equal(created.status, 201, created.text);
  agent = created.body;
});

after(async () => {
  if (process.env.CAMPAIGN_LOGS) for (const l of worker?.logs() ?? []) if (l.level === 'error') console.log(JSON.stringify(l));
  await worker?.stop();
  await twilio?.close();
});

const number = (prefix, i) => `${prefix}${String(i).padStart(4, '0')}`;

test('a campaign across three zones: window, pacing, pause/resume, overlapping ticks and a restart dial each contact once', async () => {
  const ny = Array.from({ length: 100 }, (_, i) => number('+1212555', 1000 + i));
  const chi = Array.from({ length: 100 }, (_, i) => number('+1312555', 1000 + i));
  const tokyo = Array.from({ length: 100 }, (_, i) => number('+8131234', 1000 + i));
  const suppressed = ny[7];
  const sup = await worker.api('POST', '/api/v1/suppressions', { phone: suppressed });
  assert.equal(sup.status, 201, sup.text);

  // Line 1 is the header; a quoted name with a comma, and a quoted line break, shift nothing but
  // the line numbers after them.
  const lines = ['\ufeffphone,name,time_zone,plan'];
  ny.forEach((p, i) => lines.push(`${p},"Doe, Jane ${i}",${ZONES.ny},gold`));
  chi.forEach((p, i) => lines.push(`${p},Chi ${i},${ZONES.chi},"silver\nplus"`));
  tokyo.forEach((p, i) => lines.push(`${p},Tokyo ${i},${ZONES.tokyo},bronze`));
  // Header + 100 NY lines + 100 Chicago records of two lines each + 100 Tokyo lines.
  const nextLine = 1 + 100 + 200 + 100 + 1;
  lines.push('12345,Bad Phone,America/New_York,x');
  lines.push('+12125559999,Bad Zone,Mars/Base,x');
  lines.push(`${ny[0]},Again,${ZONES.ny},dup`);
  const csv = lines.join('\r\n') + '\r\n';

  const window = windowAroundNewYork();
  const res = await worker.api('POST', '/api/v1/campaigns', {
    agent_id: agent.id, name: 'Renewals', window, pacing: { calls_per_minute: 1000, max_concurrent: 30 }, csv,
  });
  assert.equal(res.status, 201, res.text);
  const campaign = res.body;
  assert.equal(campaign.status, 'active');
  assert.equal(campaign.import.contacts, 300);
  assert.deepEqual(
    campaign.import.errors.map((e) => [e.line, e.code]),
    [[nextLine, 'invalid_phone'], [nextLine + 1, 'invalid_time_zone'], [nextLine + 2, 'duplicate']],
  );
  assert.match(campaign.import.errors[2].message, /line 2\b/);
  assert.equal(campaign.progress.pending, 300);
  assert.equal(campaign.progress.invalid, 3);

  const inWindow = [...ny, ...chi].filter((p) => p !== suppressed);
  let rounds = 0;
  let paused = false;
  let restarted = false;
  while (inWindow.some((p) => dialsTo(p) === 0)) {
    rounds += 1;
    assert.ok(rounds < 40, `every in-window contact dialled within 40 ticks (${inWindow.filter((p) => dialsTo(p) === 0).length} left)`);
    const before = twilio.createRequests.length;
    if (rounds === 2) {
      // Two ticks at once (the cron and the alarm overlapping): the claims decide, no double dial.
      await Promise.all([worker.scheduled(), worker.scheduled()]);
    } else {
      await worker.scheduled();
    }
    // Never more calls in flight than max_concurrent.
    assert.ok(liveSids().length <= 30, `in flight ${liveSids().length} <= 30`);
    if (rounds === 3 && !paused) {
      paused = true;
      const p = await worker.api('POST', `/api/v1/campaigns/${campaign.id}/pause`);
      assert.equal(p.status, 200, p.text);
      assert.equal(p.body.status, 'paused');
      for (const sid of liveSids()) await end(sid);
      const dialled = twilio.createRequests.length;
      await worker.scheduled();
      await sleep(300);
      assert.equal(twilio.createRequests.length, dialled, 'a paused campaign dials nobody');
      const r = await worker.api('POST', `/api/v1/campaigns/${campaign.id}/resume`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.status, 'active');
      continue;
    }
    if (rounds === 5 && !restarted) {
      restarted = true;
      // Stop the worker mid-campaign (calls in flight) and start it again on the same state
      // and port, so the calls' status callbacks still reach it.
      const { state, port } = worker;
      await worker.stop({ keepState: true });
      worker = await startCampaignWorker({ state, port });
    }
    assert.ok(twilio.createRequests.length > before || liveSids().length > 0 || rounds === 5, `tick ${rounds} dialled`);
    for (const sid of liveSids()) await end(sid);
  }
  for (const sid of liveSids()) await end(sid);

  for (const p of inWindow) assert.equal(dialsTo(p), 1, `${p} dialled exactly once`);
  for (const p of tokyo) assert.equal(dialsTo(p), 0, `${p} is outside the window`);
  assert.equal(dialsTo(suppressed), 0, 'a suppressed number is never dialled');
  assert.equal(dialsTo('+12125559999'), 0);
  assert.ok(dialledNumbers().every((to) => inWindow.includes(to)), 'only in-window contacts were dialled');

  // The dial carries the campaign call: our signed URLs, the contact's caller id.
  const first = twilio.createRequests.find((r) => r.fields.To === ny[0]);
  assert.equal(first.fields.From, '+15017122661');

  const got = await eventually(async () => {
    const c = await worker.api('GET', `/api/v1/campaigns/${campaign.id}`);
    return c.body.progress.completed === inWindow.length ? c : null;
  }, { message: 'every dialled contact completed' });
  assert.deepEqual(
    { ...got.body.progress },
    { pending: 100, in_progress: 0, completed: 199, no_answer: 0, failed: 0, opted_out: 1, canceled: 0, invalid: 3 },
  );
  assert.equal(got.body.status, 'active', 'Tokyo is still waiting for its window');

  // Rows by status, with their errors and variables.
  const opted = await worker.api('GET', `/api/v1/campaigns/${campaign.id}/contacts?status=opted_out`);
  assert.equal(opted.status, 200);
  assert.deepEqual(opted.body.data.map((c) => c.phone), [suppressed]);
  const invalid = await worker.api('GET', `/api/v1/campaigns/${campaign.id}/contacts?status=invalid&limit=10`);
  assert.deepEqual(invalid.body.data.map((c) => [c.line, c.error.code, c.phone]).sort(), [
    [nextLine, 'invalid_phone', '12345'], [nextLine + 1, 'invalid_time_zone', '+12125559999'], [nextLine + 2, 'duplicate', ny[0]],
  ]);
  const chiRow = (await worker.api('GET', `/api/v1/campaigns/${campaign.id}/contacts?status=completed&limit=200`)).body.data
    .find((c) => c.phone === chi[3]);
  assert.deepEqual(chiRow.vars, { plan: 'silver\nplus' });
  assert.equal(chiRow.name, 'Chi 3');
  const call = await worker.api('GET', `/api/v1/calls/${chiRow.call_id}`);
  assert.equal(call.body.status, 'completed');
  assert.equal(call.body.to, chi[3]);
  assert.equal(call.body.contact.name, 'Chi 3');
  assert.equal(call.body.metadata.campaign_id, campaign.id);
  assert.equal(call.body.contact.plan, 'silver\nplus', 'the row\'s columns are the call\'s contact fields');

  // The export: one line per row, with the call's outcome.
  const exp = await worker.fetch(`/api/v1/campaigns/${campaign.id}/export`, { headers: { authorization: 'Bearer test-admin-key' } });
  assert.equal(exp.status, 200);
  assert.match(exp.headers.get('content-type'), /^text\/csv/);
  const text = await exp.text();
  const rows = text.trim().split('\r\n');
  assert.match(rows[0], /^line,phone,name,email,status,attempts,outcome,duration_seconds,error,call_id,analysis_success/);
  assert.equal(rows.length, 1 + 303, 'header, each row once');
  assert.ok(text.includes(`,${ny[0]},"Doe, Jane 0",,completed,1,completed,`), 'completed row with its outcome');

  // campaign.* events were published.
  for (const t of ['campaign.started', 'campaign.paused', 'campaign.resumed']) {
    const events = (await worker.api('GET', `/api/v1/events?type=${t}`)).body.data;
    assert.ok(events.some((e) => e.payload?.data?.campaign_id === campaign.id || JSON.stringify(e).includes(campaign.id)), t);
  }
});

test('pacing per minute, retries inside the window, completion and cancel', async () => {
  const window = windowAroundNewYork();
  const phones = Array.from({ length: 8 }, (_, i) => number('+1646555', 2000 + i));
  const paced = await worker.api('POST', '/api/v1/campaigns', {
    agent_id: agent.id, name: 'Paced', window, pacing: { calls_per_minute: 3, max_concurrent: 10 },
    contacts: phones.map((phone) => ({ phone, time_zone: ZONES.ny })),
  });
  assert.equal(paced.status, 201, paced.text);
  await worker.scheduled();
  await worker.scheduled();
  const dialled = phones.filter((p) => dialsTo(p) > 0);
  assert.equal(dialled.length, 3, 'three a minute, however many ticks');
  for (const sid of liveSids()) await end(sid);
  await worker.scheduled();
  assert.equal(phones.filter((p) => dialsTo(p) > 0).length, 3, 'a freed slot does not lift the per-minute cap');

  const cancel = await worker.api('POST', `/api/v1/campaigns/${paced.body.id}/cancel`);
  assert.equal(cancel.status, 200, cancel.text);
  assert.equal(cancel.body.status, 'canceled');
  assert.equal(cancel.body.progress.canceled, 5);
  assert.equal((await worker.api('POST', `/api/v1/campaigns/${paced.body.id}/resume`)).status, 409);
  assert.equal((await worker.api('POST', `/api/v1/campaigns/${paced.body.id}/cancel`)).status, 200, 'a repeated cancel is no error');

  // One contact, no answer twice: retried once after the agent's 10 s, then final.
  const phone = '+16465553000';
  const retried = await worker.api('POST', '/api/v1/campaigns', {
    agent_id: agent.id, name: 'Retry', window: { ...window, time_zone: ZONES.ny },
    pacing: { calls_per_minute: 10, max_concurrent: 1 }, contacts: [{ phone, name: 'Rita' }],
  });
  assert.equal(retried.status, 201, retried.text);
  await worker.scheduled();
  assert.equal(dialsTo(phone), 1);
  const firstSid = liveSids()[0];
  await end(firstSid, 'no-answer');
  const pending = await eventually(async () => {
    const c = (await worker.api('GET', `/api/v1/campaigns/${retried.body.id}/contacts`)).body.data[0];
    return c.status === 'pending' && c.attempts === 1 ? c : null;
  }, { message: 'pending again for a retry' });
  assert.ok(Date.parse(pending.next_attempt_at) - Date.now() > 3000, 'the retry waits for the policy spacing');
  await worker.scheduled();
  assert.equal(dialsTo(phone), 1, 'not before the retry time');
  await sleep(Date.parse(pending.next_attempt_at) - Date.now() + 500);
  await worker.scheduled();
  await eventually(() => dialsTo(phone) === 2, { message: 'second attempt dialled' });
  const secondSid = liveSids()[0];
  assert.notEqual(secondSid, firstSid);
  await end(secondSid, 'no-answer');
  const done = await eventually(async () => {
    await worker.scheduled();
    const c = await worker.api('GET', `/api/v1/campaigns/${retried.body.id}`);
    return c.body.status === 'completed' ? c.body : null;
  }, { message: 'campaign completed' });
  assert.equal(done.progress.no_answer, 1);
  const row = (await worker.api('GET', `/api/v1/campaigns/${retried.body.id}/contacts`)).body.data[0];
  assert.equal(row.attempts, 2);
  const call = await worker.api('GET', `/api/v1/calls/${row.call_id}`);
  assert.equal(call.body.attempt, 2, 'one call, two attempts');
  await worker.scheduled();
  assert.equal(dialsTo(phone), 2, 'no third dial');
  for (const [t, id] of [['campaign.canceled', paced.body.id], ['campaign.completed', retried.body.id]]) {
    const events = (await worker.api('GET', `/api/v1/events?type=${t}`)).body.data;
    assert.equal(events.filter((e) => JSON.stringify(e).includes(id)).length, 1, `${t} once`);
  }
});

test('another tenant cannot see or control a campaign; viewers only read; bad and oversized lists are refused', async () => {
  const window = windowAroundNewYork();
  const mine = await worker.api('POST', '/api/v1/campaigns', {
    agent_id: agent.id, name: 'Private', window: { ...window, days: ['mon'] }, pacing: { calls_per_minute: 1, max_concurrent: 1 },
    contacts: [{ phone: '+12125550001', time_zone: ZONES.ny }],
  });
  assert.equal(mine.status, 201, mine.text);
  const other = await worker.api('POST', '/api/v1/tenants', { name: 'Tenant B' });
  assert.equal(other.status, 201, other.text);
  const bKey = other.body.api_key.key;
  assert.equal((await worker.api('GET', `/api/v1/campaigns/${mine.body.id}`, undefined, { key: bKey })).status, 404);
  assert.equal((await worker.api('POST', `/api/v1/campaigns/${mine.body.id}/pause`, undefined, { key: bKey })).status, 404);
  assert.equal((await worker.api('GET', `/api/v1/campaigns/${mine.body.id}/contacts`, undefined, { key: bKey })).status, 404);
  assert.equal((await worker.api('GET', `/api/v1/campaigns/${mine.body.id}/export`, undefined, { key: bKey })).status, 404);
  assert.equal((await worker.api('GET', '/api/v1/campaigns', undefined, { key: bKey })).body.data.length, 0);
  // Tenant B cannot start a campaign with tenant A's agent.
  const stolen = await worker.api('POST', '/api/v1/campaigns', {
    agent_id: agent.id, name: 'x', window, pacing: { calls_per_minute: 1, max_concurrent: 1 }, contacts: [{ phone: '+12125550002', time_zone: ZONES.ny }],
  }, { key: bKey });
  assert.equal(stolen.status, 422);
  assert.equal(stolen.body.error.details[0].code, 'unknown_agent');

  const viewer = (await worker.api('POST', '/api/v1/api-keys', { name: 'campaign viewer', role: 'viewer' })).body.key;
  assert.equal((await worker.api('GET', `/api/v1/campaigns/${mine.body.id}`, undefined, { key: viewer })).status, 200);
  assert.equal((await worker.api('POST', `/api/v1/campaigns/${mine.body.id}/pause`, undefined, { key: viewer })).status, 403);
  assert.equal((await worker.api('POST', '/api/v1/campaigns', { name: 'v' }, { key: viewer })).status, 403);

  const base = { agent_id: agent.id, name: 'Big', window, pacing: { calls_per_minute: 1, max_concurrent: 1 } };
  // One row past 100,000: 413 before anything is stored.
  const rows = ['phone'];
  for (let i = 0; i <= 100_000; i++) rows.push(`+1415${String(i).padStart(7, '0')}`);
  const tooMany = await worker.api('POST', '/api/v1/campaigns', { ...base, window: { ...window, time_zone: ZONES.ny }, csv: rows.join('\n') });
  assert.equal(tooMany.status, 413, tooMany.text);
  assert.equal(tooMany.body.error.code, 'too_many_rows');
  // A body past 16 MiB is cut off while streaming.
  const huge = await worker.api('POST', '/api/v1/campaigns', { ...base, csv: 'phone\n' + 'x'.repeat(17 * 1024 * 1024) });
  assert.equal(huge.status, 413);
  // Broken lists and settings: 422 naming the problem.
  const unterminated = await worker.api('POST', '/api/v1/campaigns', { ...base, csv: 'phone,name\n+12125550003,"open' });
  assert.equal(unterminated.status, 422);
  assert.equal(unterminated.body.error.code, 'unterminated_quote');
  const noPhone = await worker.api('POST', '/api/v1/campaigns', { ...base, csv: 'name\nAna\n' });
  assert.equal(noPhone.body.error.code, 'no_phone_column');
  const noneValid = await worker.api('POST', '/api/v1/campaigns', { ...base, contacts: [{ phone: 'nope' }] });
  assert.equal(noneValid.status, 422);
  assert.equal(noneValid.body.error.code, 'no_valid_contacts');
  assert.equal(noneValid.body.error.details[0].line, 1);
  // The agent's prompt needs {{contact.plan}} and {{contact.name}}: a row without either is
  // refused by line (never dialled with a gap), the others go ahead.
  const needy = await worker.api('POST', '/api/v1/agents', {
    name: 'Needs plan', system_prompt: 'Offer {{contact.name}} the {{contact.plan}} plan.', first_message: 'Hi {{contact.name | there}}!',
    voice: { provider: 'elevenlabs', voice_id: 'voice_1' }, variables: { contact_fields: ['plan'] },
  });
  assert.equal(needy.status, 201, needy.text);
  const vars = await worker.api('POST', '/api/v1/campaigns', {
    ...base, agent_id: needy.body.id, window: { ...window, days: ['sun'], time_zone: ZONES.ny },
    csv: 'phone,name,plan\n+12125550010,Ana,gold\n+12125550011,,gold\n+12125550012,Bo,\n',
  });
  assert.equal(vars.status, 201, vars.text);
  assert.equal(vars.body.import.contacts, 1);
  assert.deepEqual(vars.body.import.errors.map((e) => [e.line, e.code]), [[3, 'missing_variable'], [4, 'missing_variable']]);
  assert.match(vars.body.import.errors[1].message, /\{\{contact\.plan\}\}/);
  const badSettings = await worker.api('POST', '/api/v1/campaigns', {
    agent_id: agent.id, name: 'x', window: { days: ['someday'], from: '9', to: '25:00' },
    pacing: { calls_per_minute: 0, max_concurrent: 9999 }, contacts: [],
  });
  assert.equal(badSettings.status, 422);
  const fields = badSettings.body.error.details.map((d) => d.field);
  for (const f of ['window.days', 'window.from', 'window.to', 'pacing.calls_per_minute', 'pacing.max_concurrent']) {
    assert.ok(fields.includes(f), `${f} in ${fields}`);
  }
});

test('a contact who texted STOP is not dialled by a later campaign; after START a new campaign dials them', async () => {
  // Inbound texts find their tenant by the number texted: route one to the campaign agent.
  const ourNumber = '+15017122700';
  await createNumber(worker, ourNumber, agent.id);
  const text = (from, body) => sendTwilioText(`${worker.url}/sms/twilio`, AUTH_TOKEN, { from, to: ourNumber, body, accountSid: ACCOUNT_SID });
  const texter = '+12125557001';
  const others = ['+12125557002', '+12125557003'];
  const stop = await text(texter, 'STOP');
  assert.equal(stop.status, 200, stop.text);
  assert.match(stop.text, /<Message>You have successfully been unsubscribed/);

  const window = windowAroundNewYork();
  const run = async (name, phones) => {
    const res = await worker.api('POST', '/api/v1/campaigns', {
      agent_id: agent.id, name, window, pacing: { calls_per_minute: 100, max_concurrent: 10 },
      contacts: phones.map((phone) => ({ phone, time_zone: ZONES.ny })),
    });
    assert.equal(res.status, 201, res.text);
    await eventually(async () => {
      await worker.scheduled();
      for (const sid of liveSids()) await end(sid);
      const c = await worker.api('GET', `/api/v1/campaigns/${res.body.id}`);
      return c.body.status === 'completed' ? c.body : null;
    }, { message: `${name} completed` });
    return (await worker.api('GET', `/api/v1/campaigns/${res.body.id}/contacts`)).body.data;
  };

  const rows = await run('After STOP', [texter, ...others]);
  assert.equal(rows.find((r) => r.phone === texter).status, 'opted_out');
  assert.equal(dialsTo(texter), 0, 'no Calls.json POST for the opted-out number');
  for (const p of others) {
    assert.equal(dialsTo(p), 1, `${p} dialled`);
    assert.equal(rows.find((r) => r.phone === p).status, 'completed');
  }

  const start = await text(texter, 'START');
  assert.equal(start.status, 200, start.text);
  const again = await run('After START', [texter]);
  assert.equal(again[0].status, 'completed');
  assert.equal(dialsTo(texter), 1, 'dialled once the opt-out is lifted');
});

test('no caller id anywhere (no from, no number of the agent, no DEFAULT_FROM_NUMBER): a call and a campaign are refused, then the agent\'s number is used', async () => {
  const bare = await startCampaignWorker({ vars: { ...VARS, TWILIO_API_URL: twilio.url, DEFAULT_FROM_NUMBER: null } });
  try {
    const made = await bare.api('POST', '/api/v1/agents', { name: 'No number', system_prompt: 'You call.', first_message: 'Hi!', voice: { provider: 'elevenlabs', voice_id: 'voice_1' } });
    assert.equal(made.status, 201, made.text);
    const startAt = new Date(Date.now() + 3_600_000).toISOString();
    const call = { to: '+12125550142', agent_id: made.body.id, start_at: startAt };
    const campaign = { agent_id: made.body.id, name: 'No caller id', window: windowAroundNewYork(), pacing: { calls_per_minute: 10, max_concurrent: 1 }, csv: `phone,name,time_zone\r\n+12125550143,Ann,${ZONES.ny}\r\n` };
    for (const [path, body] of [['/api/v1/calls', call], ['/api/v1/campaigns', campaign]]) {
      const res = await bare.api('POST', path, body);
      assert.equal(res.status, 422, `${path}: ${res.text}`);
      assert.deepEqual(res.body.error.details.map((d) => [d.field, d.code]), [['from', 'required']], `${path}: ${res.text}`);
    }
    assert.deepEqual((await bare.api('GET', '/api/v1/campaigns')).body.data, [], 'no campaign stored');
    const number = await bare.api('POST', '/api/v1/numbers', { number: '+15550107777', agent_id: made.body.id });
    assert.equal(number.status, 201, number.text);
    const scheduled = await bare.api('POST', '/api/v1/calls', call);
    assert.equal(scheduled.status, 201, scheduled.text);
    assert.equal(scheduled.body.from, '+15550107777');
    const given = await bare.api('POST', '/api/v1/calls', { ...call, to: '+12125550144', from: '+15017122661' });
    assert.equal(given.status, 201, given.text);
    assert.equal(given.body.from, '+15017122661');
  } finally {
    await bare.stop();
  }
});
