// Durable end-of-call work: the CallSession writes a job into its own storage when the call
// ends (transcript, final status, summary, `call.*.ready` events) and retries the steps that
// failed from its alarm, with exponential backoff (FINALIZE_RETRY_BASE_SECONDS=1 here), until
// each is done. Real workerd and local D1; the D1 failure is real (the transcript table is
// renamed under the running worker), the LLM failures come from the OpenAI fake.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, sqlText } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, startTwilioCall, subscribeTarget, sessionState, hangUp, QUIET_SESSION } from './live-setup.mjs';
import { startFakeTarget } from './fakes/target.mjs';

const NUMBER = '+15550002001';
const READY = ['call.transcript.ready', 'call.summary.ready'];
const isSummaryRequest = (req) => req.parsed?.stream === false;

let setup, worker, dg, openai, target;

before(async () => {
  target = await startFakeTarget();
  setup = await startLiveWorker({ vars: { FINALIZE_RETRY_BASE_SECONDS: '1' } });
  ({ worker, dg, openai } = setup);
  const agent = await createAgent(worker, {
    name: 'finalize', system_prompt: 'You are the receptionist of Acme Bistro.', first_message: 'Hi.',
    voice: { provider: 'elevenlabs' }, session: QUIET_SESSION,
  });
  await createNumber(worker, NUMBER, agent.id);
  await subscribeTarget(worker, target, ['call.completed', ...READY]);
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

/** The session record's entries named `name`. */
const recorded = async (callId, name) => (await sessionState(worker, callId)).events.filter((e) => e.event === name);

/** The call as the API shows it (status, summary, metrics, history). */
async function callRecord(callId) {
  const res = await worker.api('GET', `/api/v1/calls/${callId}`);
  assert.equal(res.status, 200, res.text);
  return res.body;
}

/** Stored events about the call (the outbox, through the API), by type: how many of each. */
async function storedEvents(callId) {
  const res = await worker.api('GET', `/api/v1/events?call_id=${callId}&limit=100`);
  assert.equal(res.status, 200, res.text);
  const counts = {};
  for (const e of res.body.data) counts[e.type] = (counts[e.type] ?? 0) + 1;
  return counts;
}

/** The stored transcript (GET /api/v1/calls/{id}/transcript), or null while there is none. */
async function storedTranscript(callId) {
  const res = await worker.api('GET', `/api/v1/calls/${callId}/transcript`);
  return res.status === 200 ? res.body : null;
}

/** Deliveries of `type` about the call at the target. */
const delivered = (callId, type) => target.deliveries.filter((d) => d.json?.type === type && d.json.data.call_id === callId);

test('a real D1 failure: the failed attempt is recorded, the alarm retries, the transcript and events land exactly once', async () => {
  // The transcript's table goes away under the running worker (same local D1 files).
  await worker.d1('ALTER TABLE transcripts RENAME TO transcripts_offline');
  let restored = false;
  try {
    openai.reply({ match: isSummaryRequest, text: 'The caller asked when the bistro opens.' });
    const call = await callAndHangUp('When do you open?', 'We open at nine.');

    const [failure] = await eventually(async () => {
      const failures = await recorded(call.callId, 'finalize_failed');
      return failures.length && failures;
    }, { message: 'failed attempt recorded' });
    assert.equal(failure.detail.attempt, 1);
    assert.deepEqual(failure.detail.failed.map((f) => f.step), ['transcript']);
    // The cause goes to the log (D1's detail is not shown to API clients), the record names the step.
    assert.equal(failure.detail.failed[0].error, 'internal error');
    assert.ok(worker.logs().some((l) => l.msg === 'internal error' && /no such table: transcripts/.test(l.error)), 'D1 refused the transcript');
    assert.ok(failure.detail.next_attempt_at > failure.at, 'the next attempt is scheduled');
    const [none] = await worker.d1(`SELECT count(*) AS n FROM transcripts_offline WHERE call_id = ${sqlText(call.callId)}`);
    assert.equal(none.n, 0, 'no transcript while D1 refuses it');
    // The operator sees it in the call's history too (the calls table is fine), and what does
    // not need the transcript went ahead: the status and the summary.
    const record = await callRecord(call.callId);
    assert.ok(record.history.some((h) => h.kind === 'finalize_failed' && h.source === 'session' && h.detail.failed[0].step === 'transcript'), JSON.stringify(record.history));
    assert.equal(record.status, 'completed');
    assert.equal(record.summary, 'The caller asked when the bistro opens.');
    assert.equal(delivered(call.callId, 'call.transcript.ready').length, 0, 'transcript.ready waits for the transcript');
    assert.ok(!(await recorded(call.callId, 'finalized')).length, 'the job is still open');

    await worker.d1('ALTER TABLE transcripts_offline RENAME TO transcripts');
    restored = true;

    // The retries back off (1, 2, 4, 8, 16 s …) while the table is away: allow for a long wait.
    await eventually(async () => (await recorded(call.callId, 'finalized')).length, { timeout: 120_000, interval: 250, message: 'job finished by an alarm retry' });
    const failures = await recorded(call.callId, 'finalize_failed');
    assert.ok(failures.length >= 1);
    assert.deepEqual(failures.map((f) => f.detail.attempt), failures.map((_, i) => i + 1), 'each failed attempt recorded once, in order');
    const transcript = await storedTranscript(call.callId);
    assert.equal(transcript.text, 'Agent: Hi.\nCaller: When do you open?\nAgent: We open at nine.');
    assert.ok((await callRecord(call.callId)).metrics.first_audio_ms.n >= 1, 'metrics stored with the transcript');

    // Every end-of-call event once in the outbox, once at the target.
    assert.deepEqual(await storedEvents(call.callId), { 'call.in_progress': 1, 'call.completed': 1, 'call.transcript.ready': 1, 'call.summary.ready': 1 });
    await target.waitFor(() => ['call.completed', ...READY].every((type) => delivered(call.callId, type).length), 20_000);
    for (const type of ['call.completed', ...READY]) assert.equal(delivered(call.callId, type).length, 1, type);
    assert.equal(delivered(call.callId, 'call.transcript.ready')[0].json.data.transcript.text, transcript.text);
    assert.equal(delivered(call.callId, 'call.transcript.ready')[0].json.data.reason, 'caller_hangup');
    assert.equal(delivered(call.callId, 'call.summary.ready')[0].json.data.summary, 'The caller asked when the bistro opens.');
    // One summary request: the summary was kept in the job, never asked for again.
    assert.equal(openai.chatRequests.filter((r) => isSummaryRequest(r) && r.parsed.messages[1].content.includes('When do you open?')).length, 1);
  } finally {
    if (!restored) await worker.d1('ALTER TABLE transcripts_offline RENAME TO transcripts');
  }
});

test('the LLM fails the summary three times: the transcript is stored at once, the summary lands on a later attempt', async () => {
  const summariesBefore = openai.chatRequests.filter(isSummaryRequest).length;
  for (let i = 0; i < 3; i++) openai.reply({ match: isSummaryRequest, status: 500 });
  openai.reply({ match: isSummaryRequest, text: 'The caller asked about parking.' });
  const call = await callAndHangUp('Is there parking?', 'Yes, behind the building.');

  // The first attempt stores the transcript and publishes it; the summary is still failing
  // (the fourth request comes at least 0.8 × (1 + 2 + 4) s after the first).
  const transcript = await eventually(() => storedTranscript(call.callId), { interval: 50, message: 'transcript stored' });
  assert.equal(transcript.text, 'Agent: Hi.\nCaller: Is there parking?\nAgent: Yes, behind the building.');
  assert.equal((await callRecord(call.callId)).summary, null, 'no summary yet');
  const early = await sessionState(worker, call.callId);
  const firstFailure = early.events.find((e) => e.event === 'finalize_failed');
  assert.ok(firstFailure, 'the failed summary is recorded');
  assert.deepEqual(firstFailure.detail.failed, [{ step: 'summary', error: 'summary request failed: HTTP 500' }]);
  assert.ok(!early.events.some((e) => e.event === 'finalized'), 'the summary is still owed');
  await target.waitFor(() => delivered(call.callId, 'call.transcript.ready').length, 20_000);
  assert.equal(delivered(call.callId, 'call.summary.ready').length, 0, 'no summary event before the summary');

  await eventually(async () => (await recorded(call.callId, 'finalized')).length, { timeout: 60_000, message: 'job finished' });
  const record = await callRecord(call.callId);
  assert.equal(record.status, 'completed');
  assert.equal(record.summary, 'The caller asked about parking.');
  const failures = await recorded(call.callId, 'finalize_failed');
  assert.deepEqual(failures.map((f) => f.detail.failed.map((x) => x.step)), [['summary'], ['summary'], ['summary']]);

  // Four requests, each retry later than the one before by the doubling backoff (±20 %).
  const requests = openai.chatRequests.filter(isSummaryRequest).slice(summariesBefore);
  assert.equal(requests.length, 4);
  assert.deepEqual(requests.map((r) => r.reply.status ?? 200), [500, 500, 500, 200]);
  const gaps = requests.slice(1).map((r, i) => r.at - requests[i].at);
  gaps.forEach((gap, i) => assert.ok(gap >= 800 * 2 ** i - 50, `retry ${i + 1} after ${gap} ms`));

  await target.waitFor(() => delivered(call.callId, 'call.summary.ready').length, 20_000);
  assert.deepEqual(await storedEvents(call.callId), { 'call.in_progress': 1, 'call.completed': 1, 'call.transcript.ready': 1, 'call.summary.ready': 1 });
  assert.equal(delivered(call.callId, 'call.summary.ready').length, 1);
  assert.equal(delivered(call.callId, 'call.summary.ready')[0].json.data.summary, 'The caller asked about parking.');
  assert.equal(delivered(call.callId, 'call.transcript.ready').length, 1);
  // The finished job cleared the call's data from the object's storage; the record stays.
  assert.ok(!worker.logs().some((l) => l.msg === 'clear call data'), 'call data cleared');
  assert.deepEqual((await sessionState(worker, call.callId)).turns.map((t) => t.id), [0, 1]);
});
