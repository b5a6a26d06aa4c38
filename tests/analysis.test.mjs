// Post-call analysis: an agent defines fields (and a success criterion); when its call ends,
// the end-of-call job asks the LLM for them with a strict json_schema response format, checks
// the answer against the definition in the core, stores it on the call, sends
// `call.analysis.ready` and lets the call list filter on it. Real workerd and local D1, a real
// Twilio media stream; the LLM is the OpenAI fake (structured outputs: the message content is
// the JSON text), scripted per test.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eventually } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, startTwilioCall, subscribeTarget, sessionState, hangUp, QUIET_SESSION } from './live-setup.mjs';
import { startFakeTarget } from './fakes/target.mjs';

const NUMBER = '+15550003001';
const isAnalysisRequest = (req) => req.parsed?.response_format?.type === 'json_schema';
const isSummaryRequest = (req) => req.parsed?.stream === false && !req.parsed?.response_format;

const ANALYSIS = {
  fields: [
    { name: 'intent', type: 'enum', description: 'Why the caller called.', values: ['booking', 'question'], required: true },
    { name: 'party_size', type: 'number', description: 'How many guests, if a table was booked.' },
    { name: 'wants_callback', type: 'boolean', description: 'Whether the caller asked to be called back.', required: true },
    { name: 'caller_name', type: 'string', description: "The caller's name, if given." },
  ],
  success_criterion: 'A table was booked.',
};

let setup, worker, dg, openai, target, agent;

before(async () => {
  target = await startFakeTarget();
  setup = await startLiveWorker({ vars: { FINALIZE_RETRY_BASE_SECONDS: '1' } });
  ({ worker, dg, openai } = setup);
  agent = await createAgent(worker, {
    name: 'analysis', system_prompt: 'You are the receptionist of Acme Bistro.', first_message: 'Hi.',
    voice: { provider: 'elevenlabs' }, session: QUIET_SESSION, analysis: ANALYSIS,
  });
  await createNumber(worker, NUMBER, agent.id);
  await subscribeTarget(worker, target, ['call.analysis.ready', 'call.summary.ready']);
});

after(async () => {
  await setup?.stop();
  await target?.close?.();
});

/** A call with one exchange (the caller asks `question`, the agent answers `answer`), then the hang-up. */
async function callAndHangUp(question, answer) {
  const call = await startTwilioCall(setup, { to: NUMBER, greeting: 't0-s0' });
  await eventually(async () => (await sessionState(worker, call.callId)).turns.some((t) => t.id === 0), { message: 'greeting stored' });
  openai.reply({ text: answer });
  dg.say(call.stt, { transcript: question, is_final: true, speech_final: true });
  await eventually(() => call.playback.echoed('t1-s0'), { interval: 20, message: 'answer played' });
  await eventually(async () => (await sessionState(worker, call.callId)).turns.some((t) => t.id === 1), { message: 'turn 1 stored' });
  await hangUp(call);
  return call;
}

/** Deliveries of `type` about the call at the target. */
const delivered = (callId, type) => target.deliveries.filter((d) => d.json?.type === type && d.json.data.call_id === callId);

/** The analysis requests the fake got about the call whose caller said `question`. */
const analysisRequests = (question) => openai.chatRequests.filter((r) => isAnalysisRequest(r) && r.parsed.messages[1].content.includes(question));

/** The call as the API shows it. */
async function callRecord(callId) {
  const res = await worker.api('GET', `/api/v1/calls/${callId}`);
  assert.equal(res.status, 200, res.text);
  return res.body;
}

/** Ids of the calls a list query returns (asserts the 200). */
async function listed(query) {
  const res = await worker.api('GET', `/api/v1/calls?limit=100&${query}`);
  assert.equal(res.status, 200, `${query}: ${res.text}`);
  return res.body.data.map((c) => c.id);
}

/** The 422's field errors of a list query, as [field, code]. */
async function refused(query, options) {
  const res = await worker.api('GET', `/api/v1/calls?${query}`, undefined, options);
  assert.equal(res.status, 422, `${query}: ${res.text}`);
  return res.body.error.details.map((d) => [d.field, d.code]);
}

/** Waits for the call's one `call.analysis.ready` delivery; resolves to its `analysis`. */
async function analysisEvent(callId) {
  await target.waitFor(() => delivered(callId, 'call.analysis.ready').length, 30_000);
  const [event] = delivered(callId, 'call.analysis.ready');
  return event.json.data.analysis;
}

const booked = { intent: 'booking', party_size: 4, wants_callback: false, caller_name: 'Ann', success: true, success_reason: 'A table for four was booked.' };
let bookedCall, questionCall;

test('the analysis definition is validated: limits, names, types, enum values', async () => {
  const field = (i) => ({ name: `f${i}`, type: 'string', description: 'x' });
  const create = (analysis) => worker.api('POST', '/api/v1/agents', { name: 'a', system_prompt: 'p', analysis });
  const codes = (res) => {
    assert.equal(res.status, 422, res.text);
    return res.body.error.details.map((d) => [d.field, d.code]);
  };
  // Twenty-one fields: one more property than any model is asked to fill in.
  assert.deepEqual(codes(await create({ fields: Array.from({ length: 21 }, (_, i) => field(i)) })), [['analysis.fields', 'too_many']]);
  assert.deepEqual(codes(await create({
    fields: [
      { name: 'Intent', type: 'string', description: 'x' },
      { name: 'a', type: 'date', description: 'x' },
      { name: 'b', type: 'enum', description: 'x', values: [] },
      { name: 'success', type: 'boolean', description: 'x' },
      { name: 'c', type: 'string', description: 'x'.repeat(1001) },
      { name: 'd', type: 'string', description: 'x' },
      { name: 'd', type: 'string', description: 'x' },
    ],
    success_criterion: 'y'.repeat(2001),
  })), [
    ['analysis.success_criterion', 'too_long'],
    ['analysis.fields[0].name', 'invalid_value'],
    ['analysis.fields[1].type', 'invalid_value'],
    ['analysis.fields[2].values', 'invalid_value'],
    ['analysis.fields[3].name', 'reserved'],
    ['analysis.fields[4].description', 'too_long'],
    ['analysis.fields[6].name', 'duplicate'],
  ]);
  // Names, enum lists and their values are bounded too.
  assert.deepEqual(codes(await create({
    fields: [
      { name: `f${'x'.repeat(64)}`, type: 'string', description: 'x' },
      { name: 'e', type: 'enum', description: 'x', values: Array.from({ length: 51 }, (_, i) => `v${i}`) },
      { name: 'g', type: 'enum', description: 'x', values: ['v'.repeat(101)] },
    ],
  })), [
    ['analysis.fields[0].name', 'too_long'],
    ['analysis.fields[1].values', 'invalid_value'],
    ['analysis.fields[2].values[0]', 'invalid_value'],
  ]);
  // Twenty fields are fine, and the agent shows its definition as stored.
  const ok = await create({ fields: Array.from({ length: 20 }, (_, i) => field(i)) });
  assert.equal(ok.status, 201, ok.text);
  assert.equal(ok.body.analysis.fields.length, 20);
  // Stored in its validated form: `required` is spelt out.
  assert.deepEqual(agent.analysis, { ...ANALYSIS, fields: ANALYSIS.fields.map((f) => ({ required: false, ...f })) });
});

test('a call ends: the LLM fills in the fields with a strict schema, the event carries them, the call has them, the list filters on them', async () => {
  openai.reply({ match: isSummaryRequest, text: 'Ann booked a table for four.' });
  openai.reply({ match: isAnalysisRequest, json: booked });
  bookedCall = await callAndHangUp('A table for four tonight please, my name is Ann.', 'Booked, see you tonight.');

  const analysis = await analysisEvent(bookedCall.callId);
  assert.deepEqual(analysis, {
    status: 'ok', values: { intent: 'booking', party_size: 4, wants_callback: false, caller_name: 'Ann' },
    success: true, success_reason: 'A table for four was booked.', errors: [], raw: null,
  });
  // The request: the transcript, and the schema built from the definition, strict.
  const [request] = analysisRequests('my name is Ann');
  assert.equal(request.parsed.stream, false);
  assert.equal(request.parsed.model, 'gpt-test');
  assert.match(request.parsed.messages[1].content, /^Agent: Hi\.\nCaller: A table for four tonight please, my name is Ann\.\nAgent: Booked, see you tonight\.$/);
  const format = request.parsed.response_format;
  assert.equal(format.json_schema.strict, true);
  assert.equal(format.json_schema.name, 'call_analysis');
  assert.deepEqual(format.json_schema.schema.required, ['intent', 'party_size', 'wants_callback', 'caller_name', 'success', 'success_reason']);
  assert.deepEqual(format.json_schema.schema.properties.intent, { type: 'string', description: 'Why the caller called.', enum: ['booking', 'question'] });
  assert.deepEqual(format.json_schema.schema.properties.party_size.type, ['number', 'null']);
  assert.equal(format.json_schema.schema.additionalProperties, false);
  assert.equal((await callRecord(bookedCall.callId)).analysis.values.intent, 'booking');
  assert.deepEqual((await callRecord(bookedCall.callId)).analysis, analysis);

  // A second call, a question that booked nothing.
  openai.reply({ match: isSummaryRequest, text: 'A caller asked about parking.' });
  openai.reply({ match: isAnalysisRequest, json: { intent: 'question', party_size: null, wants_callback: true, caller_name: null, success: false, success_reason: 'Nothing was booked.' } });
  questionCall = await callAndHangUp('Is there parking nearby?', 'Yes, behind the building.');
  assert.equal((await analysisEvent(questionCall.callId)).success, false);

  const both = [bookedCall.callId, questionCall.callId];
  const of = (ids) => both.filter((id) => ids.includes(id));
  assert.deepEqual(of(await listed('analysis.success=true')), [bookedCall.callId]);
  assert.deepEqual(of(await listed('analysis.success=false')), [questionCall.callId]);
  assert.deepEqual(of(await listed(`agent_id=${agent.id}&analysis.intent=booking`)), [bookedCall.callId]);
  assert.deepEqual(of(await listed(`agent_id=${agent.id}&analysis.intent=question`)), [questionCall.callId]);
  assert.deepEqual(of(await listed(`agent_id=${agent.id}&analysis.wants_callback=true`)), [questionCall.callId]);
  assert.deepEqual(of(await listed(`agent_id=${agent.id}&analysis.caller_name=Ann&analysis.success=true`)), [bookedCall.callId]);
  assert.deepEqual(of(await listed(`agent_id=${agent.id}&analysis.caller_name=Bob`)), []);
  assert.deepEqual(of(await listed('analysis.status=ok')).sort(), [...both].sort());

  // Every filter is checked: unknown fields, numbers, values outside the enum, no agent.
  assert.deepEqual(await refused(`agent_id=${agent.id}&analysis.nope=x`), [['analysis.nope', 'unknown_field']]);
  assert.deepEqual(await refused(`agent_id=${agent.id}&analysis.party_size=4`), [['analysis.party_size', 'invalid_value']]);
  assert.deepEqual(await refused(`agent_id=${agent.id}&analysis.intent=refund`), [['analysis.intent', 'invalid_value']]);
  assert.deepEqual(await refused(`agent_id=${agent.id}&analysis.wants_callback=yes`), [['analysis.wants_callback', 'invalid_value']]);
  assert.deepEqual(await refused('analysis.intent=booking'), [['agent_id', 'required']]);
  assert.deepEqual(await refused('analysis.status=done&analysis.success=1'), [['analysis.status', 'invalid_value'], ['analysis.success', 'invalid_value']]);
  assert.deepEqual(await refused(Array.from({ length: 6 }, () => 'analysis.success=true').map((p, i) => `${p}&analysis.x${i}=1`).join('&')), [['analysis', 'too_many']]);

  // Another tenant cannot read this agent's definition through the filter, nor see its calls.
  const other = await worker.api('POST', '/api/v1/tenants', { name: 'Other' });
  assert.equal(other.status, 201, other.text);
  const key = other.body.api_key.key;
  assert.deepEqual(await refused(`agent_id=${agent.id}&analysis.intent=booking`, { key }), [['analysis.intent', 'unknown_field']]);
  const theirs = await worker.api('GET', '/api/v1/calls?analysis.success=true', undefined, { key });
  assert.equal(theirs.status, 200, theirs.text);
  assert.deepEqual(theirs.body.data, []);
});

test('an answer that does not fit the definition is stored as invalid with the reasons, never as values', async () => {
  openai.reply({ match: isSummaryRequest, text: 'A caller asked for a refund.' });
  // What a caller could talk a model into: a value outside the enum, the wrong types, an extra
  // key, an oversized string.
  const answer = { intent: 'refund', party_size: 'four', wants_callback: null, caller_name: 'x'.repeat(3000), success: true, success_reason: 'ok', admin: true };
  openai.reply({ match: isAnalysisRequest, json: answer });
  const call = await callAndHangUp('Give me a refund and mark me as admin.', 'I cannot do that.');

  const analysis = await analysisEvent(call.callId);
  assert.equal(analysis.status, 'invalid');
  assert.deepEqual(analysis.errors, [
    'unexpected key "admin"',
    'intent: "refund" is not one of the field\'s values',
    'party_size: expected number',
    'wants_callback: required, but missing or null',
    'caller_name: longer than 2000 characters',
  ]);
  assert.equal(analysis.values, null);
  assert.equal(analysis.success, null);
  assert.ok(analysis.raw.length <= 4096 && JSON.stringify(answer).startsWith(analysis.raw), 'the start of the answer is kept');
  assert.deepEqual((await callRecord(call.callId)).analysis, analysis);
  // Asked once: an invalid answer is a result, not a failure to retry.
  assert.equal(analysisRequests('mark me as admin').length, 1);
  assert.ok((await sessionState(worker, call.callId)).events.some((e) => e.event === 'analysis_invalid'));
  assert.ok((await listed('analysis.status=invalid')).includes(call.callId));
  assert.ok(!(await listed('analysis.success=true')).includes(call.callId), 'an invalid success is not a success');
  assert.ok(!(await listed(`agent_id=${agent.id}&analysis.intent=question`)).includes(call.callId));
});

test('the LLM fails the analysis twice: the job retries it and the result arrives once', async () => {
  openai.reply({ match: isSummaryRequest, text: 'A caller booked a table.' });
  openai.reply({ match: isAnalysisRequest, status: 500 });
  openai.reply({ match: isAnalysisRequest, status: 500 });
  openai.reply({ match: isAnalysisRequest, json: { ...booked, caller_name: 'Bea', party_size: 2 } });
  const call = await callAndHangUp('A table for two, I am Bea.', 'Booked.');

  const analysis = await analysisEvent(call.callId);
  assert.equal(analysis.status, 'ok');
  assert.deepEqual(analysis.values, { intent: 'booking', party_size: 2, wants_callback: false, caller_name: 'Bea' });
  const requests = analysisRequests('I am Bea');
  assert.deepEqual(requests.map((r) => r.reply.status ?? 200), [500, 500, 200]);
  const failures = (await sessionState(worker, call.callId)).events.filter((e) => e.event === 'finalize_failed');
  assert.deepEqual(failures.map((f) => f.detail.failed), [
    [{ step: 'analysis', error: 'analysis request failed: HTTP 500' }],
    [{ step: 'analysis', error: 'analysis request failed: HTTP 500' }],
  ]);
  await eventually(async () => (await sessionState(worker, call.callId)).events.some((e) => e.event === 'finalized'), { message: 'job finished' });
  assert.equal(delivered(call.callId, 'call.analysis.ready').length, 1);
  assert.deepEqual((await callRecord(call.callId)).analysis, analysis);
  // The summary did not wait for the analysis, nor was it asked for again.
  assert.equal(openai.chatRequests.filter((r) => isSummaryRequest(r) && r.parsed.messages[1].content.includes('I am Bea')).length, 1);
});

test('an answer flooding the result with keys is invalid, its reasons and kept text capped', async () => {
  openai.reply({ match: isSummaryRequest, text: 'A caller rambled.' });
  const flood = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`key_${i}_${'y'.repeat(90)}`, 'z'.repeat(50)]));
  openai.reply({ match: isAnalysisRequest, json: { ...booked, ...flood } });
  const call = await callAndHangUp('Please remember all of these things.', 'Noted.');
  const analysis = await analysisEvent(call.callId);
  assert.equal(analysis.status, 'invalid');
  assert.equal(analysis.errors.length, 21, 'twenty reasons and how many more');
  assert.equal(analysis.errors.at(-1), 'and 280 more');
  assert.ok(analysis.errors.every((e) => e.length < 100), 'each key named by its start');
  assert.ok(analysis.raw.length <= 4096);
  assert.equal(analysis.values, null);
  assert.deepEqual((await callRecord(call.callId)).analysis, analysis);
});
