// Custom HTTP tools: an agent declares tools that call the operator's server. Real live calls
// end to end (Twilio webhook → media stream → fake Deepgram → fake OpenAI emitting the tool
// call → the worker POSTs to a fake operator server → the answer goes back to the model), real
// workerd and local D1. The operator's server checks each request with the official
// `standardwebhooks` library; the caller's side is the fake TTS, which hears the filler line.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { eventually, sleep, sqlText } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, startTwilioCall, hangUp, QUIET_SESSION } from './live-setup.mjs';
import { startFakeHttp } from './fakes/http.mjs';

const { Webhook } = createRequire(import.meta.url)('standardwebhooks');

const TOOLS_NUMBER = '+15550004001';
const TAMPERED_NUMBER = '+15550004002';
const CALLER = '+14155550142';
const FILLER = 'Let me check that for you.';

let setup, worker, dg, openai, eleven, server;
let agent, tampered;

/** The operator's server: /order answers at once, /slow after 1.5 s, /late after 2 s. */
const ORDER = { status: 'shipped', eta: 'Tuesday' };
const routes = {
  'POST /order': () => ({ status: 200, body: ORDER }),
  'POST /slow': () => ({ status: 200, body: { status: 'in the warehouse' }, delayMs: 1_500 }),
  'POST /late': () => ({ status: 200, body: { never: 'read' }, delayMs: 2_000 }),
  'POST /broken': () => ({ status: 503, body: 'maintenance' }),
  'POST /huge': () => ({ status: 200, body: 'x'.repeat(40_000) }),
};

const params = { type: 'object', properties: { order: { type: 'string' } }, required: ['order'] };
const tools = (url) => [
  { name: 'lookup_order', description: 'Finds an order by its number.', parameters: params, url: `${url}/order`, timeout_ms: 3_000 },
  { name: 'slow_lookup', description: 'Finds an archived order.', parameters: params, url: `${url}/slow`, timeout_ms: 5_000, filler: FILLER },
  { name: 'late_lookup', description: 'Finds a lost order.', parameters: params, url: `${url}/late`, timeout_ms: 500 },
  { name: 'broken_lookup', description: 'Down for maintenance.', parameters: params, url: `${url}/broken` },
  { name: 'huge_lookup', description: 'Answers at length.', parameters: params, url: `${url}/huge` },
];

before(async () => {
  server = await startFakeHttp({ routes });
  setup = await startLiveWorker();
  ({ worker, dg, openai, eleven } = setup);
  const base = { system_prompt: 'You are the order desk. Be brief.', first_message: 'Hi.', voice: { provider: 'elevenlabs', voice_id: 'rachel' }, session: QUIET_SESSION };
  agent = await createAgent(worker, { name: 'orders', ...base, http_tools: tools(server.url) });
  await createNumber(worker, TOOLS_NUMBER, agent.id);
  tampered = await createAgent(worker, { name: 'tampered', ...base, http_tools: tools(server.url).slice(0, 1) });
  await createNumber(worker, TAMPERED_NUMBER, tampered.id);
});

after(async () => {
  await setup?.stop();
  await server?.close();
});

const lastMessage = (req) => req.parsed?.messages?.at(-1);
const startCall = (to) => startTwilioCall(setup, { to, from: CALLER, greeting: 't0-s0' });

/**
 * The caller says `transcript`; the model calls `name` with `args` (id `id`), then answers
 * `answer` once it has the result. Resolves to {offered, result (the tool message's content)}.
 */
async function toolTurn(call, transcript, { id, name, args, answer }) {
  const from = openai.chatRequests.length;
  openai.reply({ match: (req) => lastMessage(req)?.role === 'user' && lastMessage(req).content === transcript, toolCalls: [{ id, name, arguments: args }] });
  openai.reply({ match: (req) => lastMessage(req)?.role === 'tool' && lastMessage(req).tool_call_id === id, text: answer });
  dg.say(call.stt, { transcript, is_final: true, speech_final: true });
  const followUp = await eventually(
    () => openai.chatRequests.slice(from).find((r) => r.parsed?.messages?.some((m) => m.role === 'tool' && m.tool_call_id === id)),
    { timeout: 20_000, message: `the result of ${id} sent to the model` },
  );
  const asked = openai.chatRequests.slice(from).find((r) => lastMessage(r)?.content === transcript);
  const result = followUp.parsed.messages.find((m) => m.role === 'tool' && m.tool_call_id === id).content;
  await eventually(() => eleven.spokenTexts.includes(answer), { timeout: 15_000, message: `"${answer}" spoken` });
  return { offered: asked.parsed.tools.map((t) => t.function.name), result };
}

function assertInvalid(res, field, code) {
  assert.equal(res.status, 422, res.text);
  assert.equal(res.body.error.code, 'invalid_fields');
  const detail = res.body.error.details.find((d) => d.field === field);
  assert.ok(detail, `a ${field} error in ${res.text}`);
  assert.equal(detail.code, code, res.text);
}

test('tools are refused at save: private and metadata addresses, built-in names, too many, long timeouts, bad schemas', async () => {
  const base = { name: 'bad', system_prompt: 'x' };
  const one = (fields) => ({ ...base, http_tools: [{ ...tools(server.url)[0], ...fields }] });
  for (const url of ['http://10.0.0.1/tool', 'https://10.0.0.1/tool', 'http://169.254.169.254/latest/meta-data/', 'https://[::ffff:169.254.169.254]/', 'http://192.168.1.10/', 'ftp://example.com/']) {
    assertInvalid(await worker.api('POST', '/api/v1/agents', one({ url })), 'http_tools[0].url', 'invalid_url');
  }
  assertInvalid(await worker.api('POST', '/api/v1/agents', one({ name: 'end_call' })), 'http_tools[0].name', 'reserved_name');
  assertInvalid(await worker.api('POST', '/api/v1/agents', one({ name: 'rm -rf' })), 'http_tools[0].name', 'invalid_value');
  assertInvalid(await worker.api('POST', '/api/v1/agents', one({ timeout_ms: 10_001 })), 'http_tools[0].timeout_ms', 'invalid_value');
  assertInvalid(await worker.api('POST', '/api/v1/agents', one({ parameters: { type: 'string' } })), 'http_tools[0].parameters', 'invalid_schema');
  let deep = { type: 'string' };
  for (let i = 0; i < 20; i++) deep = { type: 'object', properties: { a: deep } };
  assertInvalid(await worker.api('POST', '/api/v1/agents', one({ parameters: deep })), 'http_tools[0].parameters', 'invalid_schema');
  const eleventh = Array.from({ length: 11 }, (_, i) => ({ ...tools(server.url)[0], name: `t${i}` }));
  assertInvalid(await worker.api('POST', '/api/v1/agents', { ...base, http_tools: eleventh }), 'http_tools', 'too_many');
  // A change is held to the same rules.
  assertInvalid(await worker.api('PATCH', `/api/v1/agents/${tampered.id}`, { http_tools: [{ ...tools(server.url)[0], url: 'http://10.0.0.1/' }] }), 'http_tools[0].url', 'invalid_url');
  const stored = await worker.api('GET', `/api/v1/agents/${agent.id}`);
  assert.deepEqual(stored.body.http_tools.map((t) => t.name), ['lookup_order', 'slow_lookup', 'late_lookup', 'broken_lookup', 'huge_lookup']);
  assert.equal(stored.body.http_tools[3].timeout_ms, 5_000, 'the default timeout');
  assert.equal(stored.body.tools_secret, undefined, 'the secret is not in the agent');
});

test('the tools secret: shown at creation and to admins, rotated on request', async () => {
  assert.match(agent.tools_secret, /^whsec_[A-Za-z0-9+/=]{40,}$/);
  const shown = await worker.api('GET', `/api/v1/agents/${agent.id}/tools-secret`);
  assert.equal(shown.status, 200, shown.text);
  assert.equal(shown.body.tools_secret, agent.tools_secret);
  const other = await createAgent(worker, { name: 'rotated', system_prompt: 'x' });
  const rotated = await worker.api('POST', `/api/v1/agents/${other.id}/tools-secret`);
  assert.equal(rotated.status, 200, rotated.text);
  assert.notEqual(rotated.body.tools_secret, other.tools_secret);
  assert.equal((await worker.api('GET', `/api/v1/agents/${other.id}/tools-secret`)).body.tools_secret, rotated.body.tools_secret);
  assert.equal((await worker.api('GET', '/api/v1/agents/agt_nope/tools-secret')).status, 404);
});

test('a live call: signed POSTs, answers back to the model, the filler while a slow tool runs, errors and timeouts as tool errors, latencies in the transcript', async () => {
  const call = await startCall(TOOLS_NUMBER);
  const hook = new Webhook(agent.tools_secret);

  // A quick tool: the server verifies our signature; its answer is the tool's result.
  const quick = await toolTurn(call, 'Where is order A7?', { id: 'call_quick', name: 'lookup_order', args: { order: 'A7' }, answer: 'It has shipped.' });
  assert.ok(quick.offered.includes('lookup_order') && quick.offered.includes('end_call'), `offered: ${quick.offered}`);
  assert.deepEqual(JSON.parse(quick.result), ORDER);
  const [posted] = server.requests.filter((r) => r.path === '/order');
  assert.ok(posted, 'the server was called');
  const verified = hook.verify(posted.body, posted.headers);
  assert.deepEqual(verified, { tool: 'lookup_order', arguments: { order: 'A7' }, call_id: call.callId, caller: CALLER, agent_id: agent.id });
  assert.throws(() => new Webhook('whsec_' + Buffer.alloc(32, 7).toString('base64')).verify(posted.body, posted.headers), 'another secret does not verify');
  assert.ok(!eleven.spokenTexts.includes(FILLER), 'a quick tool has no filler');

  // A slow tool (1.5 s): the caller hears the filler, then the answer.
  const slow = await toolTurn(call, 'And order B9?', { id: 'call_slow', name: 'slow_lookup', args: { order: 'B9' }, answer: 'It is in the warehouse.' });
  assert.deepEqual(JSON.parse(slow.result), { status: 'in the warehouse' });
  const spoken = eleven.spokenTexts;
  assert.ok(spoken.includes(FILLER), `filler spoken: ${JSON.stringify(spoken)}`);
  assert.ok(spoken.indexOf(FILLER) < spoken.indexOf('It is in the warehouse.'), 'the filler before the answer');

  // Past the tool's timeout (500 ms; the server takes 2 s): a tool error, said as such.
  const late = await toolTurn(call, 'What about C3?', { id: 'call_late', name: 'late_lookup', args: { order: 'C3' }, answer: 'I could not find it.' });
  assert.match(JSON.parse(late.result).error, /did not answer within 500 ms/);

  // A non-2xx answer: a tool error naming the status.
  const broken = await toolTurn(call, 'Try D4.', { id: 'call_broken', name: 'broken_lookup', args: { order: 'D4' }, answer: 'That system is down.' });
  assert.equal(JSON.parse(broken.result).error, "the tool's server answered HTTP 503");

  // A 40 KB answer reaches the model cut at 16 KB, with a note.
  const huge = await toolTurn(call, 'Tell me everything about E5.', { id: 'call_huge', name: 'huge_lookup', args: { order: 'E5' }, answer: 'That is a lot.' });
  assert.ok(huge.result.length < 16_500, `${huge.result.length} characters`);
  assert.match(huge.result, /\[truncated: the tool's answer was longer than 16384 bytes\]$/);

  // Arguments the schema rules out never reach the server.
  const before = server.requests.length;
  const bad = await toolTurn(call, 'Order number seven.', { id: 'call_bad', name: 'lookup_order', args: { order: 7 }, answer: 'Which order?' });
  assert.match(JSON.parse(bad.result).error, /"order" must be of type string/);
  assert.equal(server.requests.length, before, 'the server was not called');

  await hangUp(call).catch(() => {});
  const transcript = await eventually(async () => {
    const res = await worker.api('GET', `/api/v1/calls/${call.callId}/transcript`);
    return res.status === 200 && res.body;
  }, { timeout: 20_000, message: 'transcript stored' });
  const runs = transcript.turns.filter((t) => t.role === 'tool');
  assert.deepEqual(runs.map((r) => r.name), ['lookup_order', 'slow_lookup', 'late_lookup', 'broken_lookup', 'huge_lookup', 'lookup_order'], JSON.stringify(runs));
  const stopped = runs.at(-1);
  assert.equal(stopped.latency_ms, 0, 'arguments the schema stops are listed, never sent');
  assert.match(JSON.parse(stopped.result).error, /must be of type string/);
  for (const r of runs) assert.equal(typeof r.latency_ms, 'number', JSON.stringify(r));
  const byName = Object.fromEntries(runs.slice(0, -1).map((r) => [r.name, r]));
  assert.ok(byName.slow_lookup.latency_ms >= 1_400, `slow: ${byName.slow_lookup.latency_ms} ms`);
  assert.ok(byName.late_lookup.latency_ms >= 450 && byName.late_lookup.latency_ms < 1_900, `late: ${byName.late_lookup.latency_ms} ms`);
  assert.ok(byName.lookup_order.latency_ms < 1_400);
  assert.deepEqual(JSON.parse(byName.lookup_order.result), ORDER);
  assert.equal(JSON.parse(byName.lookup_order.arguments).order, 'A7');
});

test('a tool URL that turned private in storage is refused at call time; the server is never called', async () => {
  // Stored behind the API's back (as if saved before the rule): the call-time check holds.
  const [row] = await worker.d1(`SELECT config FROM agents WHERE id = ${sqlText(tampered.id)}`);
  const config = JSON.parse(row.config);
  const calledBefore = server.requests.length;
  for (const [i, url] of ['https://10.0.0.1/order', 'https://169.254.169.254/latest/meta-data/'].entries()) {
    config.http_tools[0].url = url;
    await worker.d1(`UPDATE agents SET config = ${sqlText(JSON.stringify(config))} WHERE id = ${sqlText(tampered.id)}`);
    const call = await startCall(TAMPERED_NUMBER);
    const { result } = await toolTurn(call, `Where is order Z${i}?`, { id: `call_ssrf_${i}`, name: 'lookup_order', args: { order: 'Z1' }, answer: `I cannot look that up ${i}.` });
    const { error } = JSON.parse(result);
    assert.match(error, /refused/, error);
    assert.match(error, /private or reserved address/, error);
    await hangUp(call).catch(() => {});
    await sleep(100);
  }
  assert.equal(server.requests.length, calledBefore, 'the loopback server got nothing either');
});
