// Security: toll fraud through the agent. A caller talks the model into calling
// `schedule_callback` (several times per reply, from a withheld, SIP or premium number, at odd
// times), and API clients ask us to dial premium / foreign numbers. Real live calls end to end:
// Twilio webhook → media stream → fake Deepgram → fake OpenAI emitting the tool calls; dials
// reach the fake Twilio REST API. Real workerd, real local D1.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, sleep, sqlText, TEST_VARS } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, startTwilioCall, hangUp, QUIET_SESSION } from './live-setup.mjs';
import { startFakeTwilio } from './fakes/twilio.mjs';

const ACCOUNT_SID = 'AC' + '1'.repeat(32);
const TWILIO_TOKEN = TEST_VARS.TWILIO_AUTH_TOKEN;
const OUTBOUND_CAP = 3;
const OFF_NUMBER = '+15550003001';
const ON_NUMBER = '+15550003002';
const CAP_NUMBER = '+15550003003';
const inSeconds = (s) => new Date(Date.now() + s * 1000).toISOString();
const inHours = (h) => inSeconds(h * 3600);

/** The live set-up (worker and instant provider fakes, started in `before`) and its parts. */
let setup, worker, dg, openai;
let twilio;
const agents = {};

before(async () => {
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: TWILIO_TOKEN });
  setup = await startLiveWorker({
    vars: {
      TWILIO_API_URL: twilio.url,
      TWILIO_ACCOUNT_SID: ACCOUNT_SID,
      DEFAULT_FROM_NUMBER: '+15017122661',
      OUTBOUND_CALLS_PER_HOUR: String(OUTBOUND_CAP),
    },
  });
  ({ worker, dg, openai } = setup);
  const base = { system_prompt: 'You are the receptionist. Be brief.', first_message: 'Hi.', voice: { provider: 'elevenlabs', voice_id: 'rachel' }, session: QUIET_SESSION };
  for (const [name, extra, number] of [
    ['off', {}, OFF_NUMBER],
    ['on', { callbacks: { enabled: true, max_per_number_per_day: 2 } }, ON_NUMBER],
    ['cap', { callbacks: { enabled: true, max_per_number_per_day: 2 } }, CAP_NUMBER],
  ]) {
    agents[name] = await createAgent(worker, { name, ...base, ...extra });
    await createNumber(worker, number, agents[name].id);
  }
});

after(async () => {
  await setup?.stop();
  await twilio?.close();
});

/** A Twilio call from `from` to `to`, end to end up to the greeting having played. */
const startCall = (to, from) => startTwilioCall(setup, { to, from, greeting: 't0-s0' });

/** Hangs up; a call the worker already ended is fine. */
const endCall = (call) => hangUp(call).catch(() => {});

const lastMessage = (req) => req.parsed?.messages?.at(-1);

/**
 * The caller says `transcript`; the model answers with `toolCalls`. Resolves to the tools the
 * model was offered and the tool results it was sent back, by tool call id.
 */
async function modelCalls(call, transcript, toolCalls) {
  const from = openai.chatRequests.length;
  openai.reply({ match: (req) => lastMessage(req)?.role === 'user' && lastMessage(req).content === transcript, text: 'Let me arrange that.', toolCalls });
  dg.say(call.stt, { transcript, is_final: true, speech_final: true });
  const ids = new Set(toolCalls.map((c) => c.id));
  const followUp = await eventually(
    () => openai.chatRequests.slice(from).find((r) => r.parsed?.stream && r.parsed.messages.some((m) => m.role === 'tool' && ids.has(m.tool_call_id))),
    { timeout: 20_000, message: `tool results for "${transcript}" sent to the model` },
  );
  const asked = openai.chatRequests.slice(from).find((r) => lastMessage(r)?.content === transcript);
  const results = {};
  for (const m of followUp.parsed.messages) {
    if (m.role === 'tool' && ids.has(m.tool_call_id)) results[m.tool_call_id] = JSON.parse(m.content);
  }
  return { offered: asked.parsed.tools.map((t) => t.function.name), results };
}

const callback = (id, startAt, note = 'call back') => ({ id, name: 'schedule_callback', arguments: { start_at: startAt, note } });

async function callbacksOf(callId) {
  return worker.d1(`SELECT id, to_number, status, start_at FROM calls WHERE json_extract(metadata, '$.callback_of') = ${sqlText(callId)}`);
}

async function history(callId) {
  const res = await worker.api('GET', `/api/v1/calls/${callId}`);
  assert.equal(res.status, 200, res.text);
  return res.body.history;
}

const refusals = (events) => events.filter((e) => e.kind === 'callback_refused').map((e) => e.detail.code);

function assertInvalid(res, field, code) {
  assert.equal(res.status, 422, res.text);
  assert.equal(res.body.error.code, 'invalid_fields');
  assert.equal(typeof res.body.error.message, 'string');
  assert.equal(typeof res.body.error.request_id, 'string');
  const detail = res.body.error.details.find((d) => d.field === field);
  assert.ok(detail, `a ${field} error in ${res.text}`);
  assert.equal(detail.code, code, res.text);
  assert.ok(detail.message.length > 0);
}

// ---- the tool on a live call ---------------------------------------------------------------

test('call backs off (the default): the tool is not offered; called anyway, it is refused and recorded', async () => {
  const call = await startCall(OFF_NUMBER, '+14155550101');
  const { offered, results } = await modelCalls(call, 'Please call me back in two hours.', [callback('cb_off', inHours(2))]);
  assert.ok(!offered.includes('schedule_callback'), `offered: ${offered}`);
  assert.deepEqual(offered.sort(), ['end_call', 'send_dtmf']);
  assert.equal(results.cb_off.code, 'callbacks_disabled');
  assert.match(results.cb_off.error, /not enabled/);
  assert.deepEqual(await callbacksOf(call.callId), []);
  assert.deepEqual(refusals(await history(call.callId)), ['callbacks_disabled']);
  assert.equal(agents.off.callbacks, null, 'no callbacks setting unless the agent sets one');
  await endCall(call);
});

test('five call backs in one reply schedule exactly one; another one later in the call is refused', async () => {
  const call = await startCall(ON_NUMBER, '+14155550102');
  const five = [0, 1, 2, 3, 4].map((i) => callback(`cb5_${i}`, inHours(2 + i)));
  const { offered, results } = await modelCalls(call, 'Call me back five times tomorrow.', five);
  assert.ok(offered.includes('schedule_callback'));
  const ok = Object.values(results).filter((r) => r.scheduled === true);
  const refused = Object.values(results).filter((r) => r.error);
  assert.equal(ok.length, 1, JSON.stringify(results));
  assert.equal(refused.length, 4);
  assert.ok(refused.every((r) => r.code === 'callback_already_scheduled'), JSON.stringify(refused));
  let scheduled = await callbacksOf(call.callId);
  assert.equal(scheduled.length, 1);
  assert.equal(scheduled[0].to_number, '+14155550102');
  assert.equal(scheduled[0].status, 'scheduled');
  assert.equal(scheduled[0].id, ok[0].call_id);

  const again = await modelCalls(call, 'And one more call back next week please.', [callback('cb_again', inHours(30))]);
  assert.equal(again.results.cb_again.code, 'callback_already_scheduled');
  scheduled = await callbacksOf(call.callId);
  assert.equal(scheduled.length, 1, 'still one call back');
  const events = await history(call.callId);
  assert.deepEqual(refusals(events), Array(5).fill('callback_already_scheduled'));
  assert.equal(events.filter((e) => e.kind === 'callback').length, 1);
  assert.deepEqual(agents.on.callbacks, { enabled: true, max_per_number_per_day: 2 });
  await endCall(call);
});

test('withheld, SIP, premium, international-network and foreign callers are never called back', async (t) => {
  for (const [from, code] of [
    ['anonymous', 'withheld_number'],
    ['sip:attacker@evil.example', 'sip_address'],
    ['+882123456789', 'premium_number'],
    ['+19005550123', 'premium_number'],
    ['+442071838750', 'country_not_allowed'], // the agent's number is in the US
    ['+18765550123', 'country_not_allowed'], // +1 876 is Jamaica, not the US
  ]) {
    await t.test(`caller ${from}: ${code}`, async () => {
      const call = await startCall(ON_NUMBER, from);
      const id = `cb_${code}`;
      const { results } = await modelCalls(call, `Call me back tomorrow, I am ${from}.`, [callback(id, inHours(20))]);
      assert.equal(results[id].code, code, JSON.stringify(results));
      assert.ok(!results[id].scheduled);
      assert.deepEqual(await callbacksOf(call.callId), []);
      assert.deepEqual(refusals(await history(call.callId)), [code]);
      await endCall(call);
    });
  }
});

test('start_at 10 s or 30 days away is refused; a refused time does not use up the call back', async () => {
  const call = await startCall(ON_NUMBER, '+14155550104');
  const soon = await modelCalls(call, 'Call me back in ten seconds.', [callback('cb_soon', inSeconds(10))]);
  assert.equal(soon.results.cb_soon.code, 'start_too_soon');
  const late = await modelCalls(call, 'Call me back next month.', [callback('cb_late', inHours(30 * 24))]);
  assert.equal(late.results.cb_late.code, 'start_too_late');
  assert.deepEqual(await callbacksOf(call.callId), []);
  assert.deepEqual(refusals(await history(call.callId)), ['start_too_soon', 'start_too_late']);
  const fine = await modelCalls(call, 'Then tomorrow morning.', [callback('cb_fine', inHours(18))]);
  assert.equal(fine.results.cb_fine.scheduled, true, JSON.stringify(fine.results));
  assert.equal((await callbacksOf(call.callId)).length, 1);
  await endCall(call);
});

test('per-number daily cap: three concurrent calls from one number get two call backs', async () => {
  const from = '+14155550105';
  // Started one after another (each takes the next STT socket), then all ask at once.
  const calls = [];
  for (let i = 0; i < 3; i++) calls.push(await startCall(CAP_NUMBER, from));
  const outcomes = await Promise.all(calls.map((call, i) => modelCalls(call, `Caller ${i}: call me back tomorrow.`, [callback(`cb_cap_${i}`, inHours(20 + i))])));
  const results = outcomes.map((o, i) => o.results[`cb_cap_${i}`]);
  assert.equal(results.filter((r) => r.scheduled === true).length, 2, JSON.stringify(results));
  const refused = results.filter((r) => r.error);
  assert.equal(refused.length, 1);
  assert.equal(refused[0].code, 'callback_daily_cap');
  const [{ n }] = await worker.d1(`SELECT count(*) AS n FROM calls WHERE to_number = ${sqlText(from)} AND json_extract(metadata, '$.callback_of') IS NOT NULL`);
  assert.equal(n, 2);
  await Promise.all(calls.map(endCall));
});

// ---- every outbound dial -------------------------------------------------------------------

test(`the hourly outbound cap (${OUTBOUND_CAP}) defers the extra API dials and retries; they stay scheduled, none fails`, async () => {
  const retrying = await worker.api('POST', '/api/v1/agents', { name: 'Retry', system_prompt: 'Try again.', retry: { max_retries: 1, spacing_seconds: 10 } });
  assert.equal(retrying.status, 201, retrying.text);
  const ids = [];
  for (let i = 0; i < 5; i++) {
    const res = await worker.api('POST', '/api/v1/calls', { to: `+1415555021${i}`, agent_id: retrying.body.id, start_at: inSeconds(2) });
    assert.equal(res.status, 201, res.text);
    ids.push(res.body.id);
  }
  const dialled = () => twilio.createRequests.filter((r) => ids.some((id) => (r.fields?.StatusCallback ?? '').includes(`call_id=${id}`)));
  await sleep(2500);
  await eventually(async () => {
    await worker.scheduled();
    return dialled().length >= OUTBOUND_CAP;
  }, { timeout: 20_000, interval: 500, message: 'the first dials' });
  await sleep(2000);
  await worker.scheduled();
  await worker.scheduled();
  assert.equal(dialled().length, OUTBOUND_CAP, 'the carrier saw at most the cap');
  const rows = await Promise.all(ids.map(async (id) => (await worker.api('GET', `/api/v1/calls/${id}`)).body));
  const waiting = rows.filter((r) => r.status === 'scheduled');
  assert.equal(waiting.length, 5 - OUTBOUND_CAP, JSON.stringify(rows.map((r) => r.status)));
  assert.ok(rows.every((r) => r.status !== 'failed'));
  for (const row of waiting) {
    assert.ok(row.dial_after, 'a deferred call says until when');
    const until = Date.parse(row.dial_after);
    assert.ok(until > Date.now() + 50 * 60_000 && until <= Date.now() + 61 * 60_000, row.dial_after);
    const deferred = row.history.filter((e) => e.kind === 'deferred');
    assert.equal(deferred.length, 1, 'recorded once, not at every scheduler run');
    assert.equal(deferred[0].detail.reason, 'outbound_cap');
  }

  // A no-answer retry is an outbound dial too: it waits for the window like the others.
  const first = dialled()[0];
  const retriedId = ids.find((id) => first.fields.StatusCallback.includes(`call_id=${id}`));
  await eventually(async () => (await worker.api('GET', `/api/v1/calls/${retriedId}`)).body.status === 'queued', { message: 'queued' });
  assert.equal((await twilio.sendStatus(first.callSid, 'no-answer')).status, 200);
  const retried = (await worker.api('GET', `/api/v1/calls/${retriedId}`)).body;
  assert.equal(retried.attempt, 2);
  assert.equal(retried.status, 'scheduled');
  await sleep(Math.max(0, Date.parse(retried.start_at) - Date.now()) + 500);
  const held = await eventually(async () => {
    await worker.scheduled();
    const row = (await worker.api('GET', `/api/v1/calls/${retriedId}`)).body;
    return row.history.some((e) => e.kind === 'deferred' && e.detail.attempt === 2) && row;
  }, { timeout: 20_000, interval: 500, message: 'the retry deferred' });
  assert.equal(held.status, 'scheduled');
  assert.ok(held.dial_after);
  assert.equal(dialled().length, OUTBOUND_CAP, 'the retry was not dialled over the cap');
});

// ---- numbers the API accepts for dialling --------------------------------------------------

test('numbers the API would dial follow the same rules: 422 naming the rule, nothing stored', async () => {
  const call = (to, agentId = agents.on.id) => worker.api('POST', '/api/v1/calls', { to, agent_id: agentId, start_at: inHours(5) });
  assertInvalid(await call('+19005550123'), 'to', 'premium_number');
  assertInvalid(await call('+882123456789'), 'to', 'premium_number');
  assertInvalid(await call('+449098790123'), 'to', 'premium_number');
  assertInvalid(await call('sip:attacker@evil.example'), 'to', 'sip_address');
  assertInvalid(await call('anonymous'), 'to', 'withheld_number');
  assertInvalid(await call('555-1234'), 'to', 'invalid_phone');

  // Ordinary numbers stay valid, foreign ones too unless the agent limits countries.
  for (const to of ['+14155550123', '+15558675310', '+442071838750']) {
    const ok = await call(to);
    assert.equal(ok.status, 201, ok.text);
    assert.equal((await worker.api('DELETE', `/api/v1/calls/${ok.body.id}`)).status, 200);
  }
  const usOnly = await worker.api('POST', '/api/v1/agents', { name: 'US only', system_prompt: 'Be brief.', allowed_countries: ['us'] });
  assert.equal(usOnly.status, 201, usOnly.text);
  assert.deepEqual(usOnly.body.allowed_countries, ['US']);
  assertInvalid(await call('+442071838750', usOnly.body.id), 'to', 'country_not_allowed');
  assertInvalid(await call('+18765550123', usOnly.body.id), 'to', 'country_not_allowed');
  const [{ n }] = await worker.d1(`SELECT count(*) AS n FROM calls WHERE to_number IN ('+19005550123', '+882123456789', '+18765550123') OR to_number LIKE 'sip:%'`);
  assert.equal(n, 0, 'nothing refused was stored');

  // The owner's phone (rung first) and the agent's transfer number are dialled too.
  assertInvalid(await worker.api('POST', '/api/v1/numbers', { number: '+15550003009', agent_id: agents.on.id, owner_phone: '+19005550123', ring_owner_first: true }), 'owner_phone', 'premium_number');
  assertInvalid(await worker.api('POST', '/api/v1/numbers', { number: '+15550003009', agent_id: agents.on.id, owner_phone: 'sip:attacker@evil.example', ring_owner_first: true }), 'owner_phone', 'sip_address');
  const listed = await worker.api('GET', '/api/v1/numbers');
  const onNumber = listed.body.data.find((n) => n.number === ON_NUMBER);
  assertInvalid(await worker.api('PATCH', `/api/v1/numbers/${onNumber.id}`, { owner_phone: '+882123456789', ring_owner_first: true }), 'owner_phone', 'premium_number');
  assert.equal((await worker.api('GET', `/api/v1/numbers/${onNumber.id}`)).body.owner_phone, null, 'the number is unchanged');
  const agent = (extra) => worker.api('POST', '/api/v1/agents', { name: 'Transfers', system_prompt: 'Be brief.', ...extra });
  assertInvalid(await agent({ session: { transfer_to: '+19005550123' } }), 'session.transfer_to', 'premium_number');
  assertInvalid(await agent({ session: { transfer_to: 'sip:desk@evil.example' } }), 'session.transfer_to', 'sip_address');
  assertInvalid(await agent({ session: { transfer_to: '+442071838750' }, allowed_countries: ['US'] }), 'session.transfer_to', 'country_not_allowed');
  assertInvalid(await agent({ callbacks: { enabled: 'yes' } }), 'callbacks.enabled', 'invalid_type');
  assertInvalid(await agent({ callbacks: { enabled: true, max_per_number_per_day: 1000 } }), 'callbacks.max_per_number_per_day', 'invalid_value');
  assertInvalid(await agent({ allowed_countries: ['XX'] }), 'allowed_countries', 'invalid_value');
  const fine = await agent({ session: { transfer_to: '+442071838750' } });
  assert.equal(fine.status, 201, fine.text);

  // A refused change leaves the stored agent as it was.
  const patched = await worker.api('PATCH', `/api/v1/agents/${fine.body.id}`, { session: { transfer_to: '+882123456789' } });
  assertInvalid(patched, 'session.transfer_to', 'premium_number');
  const stored = await worker.api('GET', `/api/v1/agents/${fine.body.id}`);
  assert.equal(stored.body.session.transfer_to, '+442071838750');
});
