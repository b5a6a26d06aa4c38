// The first run and the README's quickstart: the login key `npm run dev` generates into
// .dev.vars and the way in it prints once the worker answers; `npm run demo`'s call
// (scripts/demo.mjs's runDemo) against a worker pointed at the provider stand-ins, and the
// command itself as a child process on its own local data; the README's curl lines for creating
// an agent and a number.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, writeFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { startWorker, freePort, ROOT, TEST_VARS } from './harness.mjs';
import { startLiveWorker } from './live-setup.mjs';
import { runDemo, DEMO_AGENT, DEMO_NUMBER, DEMO_SCRIPT } from '../scripts/demo.mjs';

const execFileAsync = promisify(execFile);

let setup;

before(async () => {
  setup = await startLiveWorker();
});

after(async () => {
  await setup?.stop();
});

/** The demo call with short pauses; resolves to runDemo's result and the lines it printed. */
async function demo() {
  const lines = [];
  const result = await runDemo({
    url: setup.worker.url, key: TEST_VARS.ADMIN_API_KEY, twilioAuthToken: TEST_VARS.TWILIO_AUTH_TOKEN, fakes: setup,
    ringMs: 0, pauseMs: 100, wordMs: 0, log: (line) => lines.push(line),
  });
  return { ...result, lines };
}

test('the demo call: greeting, two turns, a barge-in cut short, the goodbye and hang-up; transcript and summary stored', async () => {
  const { worker } = setup;
  const { callId, liveUrl, detailUrl, lines } = await demo();
  assert.equal(liveUrl, `${worker.url}/#/calls/${callId}/live`);
  assert.equal(detailUrl, `${worker.url}/#/calls/${callId}`);
  const liveLine = lines.findIndex((l) => l.includes(liveUrl));
  const detailLine = lines.findIndex((l) => l.endsWith(` ${detailUrl}`));
  assert.ok(liveLine >= 0 && detailLine > liveLine, `live view URL, then call detail URL:\n${lines.join('\n')}`);

  const call = await worker.api('GET', `/api/v1/calls/${callId}`);
  assert.equal(call.status, 200, call.text);
  assert.equal(call.body.status, 'completed');
  assert.equal(call.body.to, DEMO_NUMBER);
  assert.equal(call.body.summary, DEMO_SCRIPT.summary);
  assert.ok(call.body.metrics.first_audio_ms.n >= 4, JSON.stringify(call.body.metrics));

  const transcript = await worker.api('GET', `/api/v1/calls/${callId}/transcript`);
  assert.equal(transcript.status, 200, transcript.text);
  const [t1, t2] = DEMO_SCRIPT.turns;
  const { bargeIn } = DEMO_SCRIPT;
  assert.deepEqual(
    transcript.body.turns.map(({ role, text, interrupted }) => ({ role, text, ...(interrupted ? { interrupted } : {}) })),
    [
      { role: 'agent', text: DEMO_AGENT.first_message },
      { role: 'caller', text: t1.caller },
      { role: 'agent', text: t1.agent },
      { role: 'caller', text: t2.caller },
      { role: 'agent', text: t2.agent },
      { role: 'caller', text: bargeIn.caller },
      // Cut: only the sentence heard before the caller spoke is kept.
      { role: 'agent', text: bargeIn.agent[0], interrupted: true },
      { role: 'caller', text: bargeIn.interruption },
      { role: 'agent', text: DEMO_SCRIPT.goodbye },
    ],
  );
  assert.ok(!transcript.body.text.includes('risotto'), 'the unheard sentence is not in the transcript');

  // The agent hung up (end_call), and the barge-in is in the session's record.
  const session = await worker.api('GET', `/api/v1/calls/${callId}/session`);
  assert.equal(session.body.turns.find((t) => t.id === 3).interrupted, true);
  const ended = session.body.events.find((e) => e.event === 'ended');
  assert.ok(ended, JSON.stringify(session.body.events));
  assert.notEqual(ended.detail.reason, 'caller_hangup');
});

test('the demo again: the same demo agent and number are reused, not duplicated', async () => {
  const { worker } = setup;
  const { callId } = await demo();
  const agents = (await worker.api('GET', '/api/v1/agents?limit=100')).body.data.filter((a) => a.name === DEMO_AGENT.name);
  assert.equal(agents.length, 1);
  const numbers = (await worker.api('GET', '/api/v1/numbers?limit=100')).body.data.filter((n) => n.number === DEMO_NUMBER);
  assert.deepEqual(numbers.map((n) => n.agent_id), [agents[0].id]);
  const call = await worker.api('GET', `/api/v1/calls/${callId}`);
  assert.equal(call.body.agent_id, agents[0].id);
  assert.equal(call.body.status, 'completed');
});

test('`node scripts/demo.mjs`: its own worker on the given port and local data, exit 0, the call stored there', async () => {
  const dir = await mkdtemp(path.join(ROOT, 'tests', '.tmp', 'demo-'));
  try {
    const devVars = path.join(dir, '.dev.vars');
    const key = 'demo-test-admin-key-0123456789abcdef0123';
    await writeFile(devVars, `ADMIN_API_KEY=${key}\nPUBLIC_BASE_URL=http://127.0.0.1:8787\n`);
    const state = path.join(dir, 'state');
    const port = await freePort();
    const devPort = await freePort();
    const { stdout } = await execFileAsync(process.execPath, [
      path.join(ROOT, 'scripts', 'demo.mjs'), '--port', String(port), '--dev-vars', devVars, '--state', state,
      '--ring-ms', '0', '--pause-ms', '100', '--word-ms', '0',
    ], { cwd: ROOT, env: { ...process.env, PORT: String(devPort) }, timeout: 180_000 });
    const callId = /#\/calls\/(call_[0-9a-z]+)\/live/.exec(stdout)?.[1];
    assert.ok(callId, stdout);
    // Live on the demo's worker; the detail where `npm run dev` (PORT) serves the same data.
    assert.match(stdout, new RegExp(`Watch it live: http://127\\.0\\.0\\.1:${port}/#/calls/${callId}/live\\n`));
    assert.match(stdout, new RegExp(`http://127\\.0\\.0\\.1:${devPort}/#/calls/${callId}\\n.*start it to open the call detail`));
    // The call is in the local data the command was given: a worker started on it shows it.
    const after = await startWorker({ state, vars: { ADMIN_API_KEY: key } });
    try {
      const call = await after.api('GET', `/api/v1/calls/${callId}`);
      assert.equal(call.status, 200, call.text);
      assert.equal(call.body.status, 'completed');
      assert.equal(call.body.summary, DEMO_SCRIPT.summary);
    } finally {
      await after.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the README's curl lines create an agent and attach a number to it", async () => {
  const { worker } = setup;
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  const block = /<!-- quickstart-curl -->\n```sh\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, 'the README has the quickstart curl block');
  assert.match(block, /curl /);
  // Run as written, from a project root whose .dev.vars holds this worker's key.
  const dir = await mkdtemp(path.join(ROOT, 'tests', '.tmp', 'readme-'));
  try {
    await writeFile(path.join(dir, '.dev.vars'), `ADMIN_API_KEY=${TEST_VARS.ADMIN_API_KEY}\nALLOW_PRIVATE_TARGETS=true\n`);
    const script = block.replaceAll('http://127.0.0.1:8787', worker.url);
    const { stdout } = await execFileAsync('bash', ['-euo', 'pipefail', '-c', script], { cwd: dir, timeout: 60_000 });
    const agentId = /^agent (ag_[0-9a-z]+)$/m.exec(stdout)?.[1];
    assert.ok(agentId, stdout);
    const agent = await worker.api('GET', `/api/v1/agents/${agentId}`);
    assert.equal(agent.status, 200, agent.text);
    assert.equal(agent.body.name, 'Reception');
    const number = JSON.parse(stdout.slice(stdout.indexOf('{')));
    assert.equal(number.agent_id, agentId);
    const numbers = await worker.api('GET', '/api/v1/numbers?limit=100');
    assert.ok(numbers.body.data.some((n) => n.id === number.id && n.agent_id === agentId), JSON.stringify(numbers.body.data));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** A project root holding only scripts/dev-vars.sh and .dev.vars.example; resolves to its path. */
async function bareProject() {
  const dir = await mkdtemp(path.join(ROOT, 'tests', '.tmp', 'project-'));
  await mkdir(path.join(dir, 'scripts'));
  await copyFile(path.join(ROOT, 'scripts', 'dev-vars.sh'), path.join(dir, 'scripts', 'dev-vars.sh'));
  await copyFile(path.join(ROOT, '.dev.vars.example'), path.join(dir, '.dev.vars.example'));
  return dir;
}

const adminKeyOf = async (dir) => /^ADMIN_API_KEY=(.*)$/m.exec(await readFile(path.join(dir, '.dev.vars'), 'utf8'))?.[1];

test('first run: .dev.vars gets a strong random ADMIN_API_KEY, kept on the next run; an empty or example key is replaced', async () => {
  const [a, b] = [await bareProject(), await bareProject()];
  try {
    const devVars = (dir) => execFileAsync('bash', [path.join(dir, 'scripts', 'dev-vars.sh')]);
    await devVars(a);
    await devVars(b);
    const key = await adminKeyOf(a);
    assert.match(key, /^[A-Za-z0-9_-]{43}$/, '256 random bits, base64url');
    assert.notEqual(await adminKeyOf(b), key, 'every checkout gets its own key');
    const example = await readFile(path.join(a, '.dev.vars.example'), 'utf8');
    const written = await readFile(path.join(a, '.dev.vars'), 'utf8');
    assert.equal(written, example.replace(/^ADMIN_API_KEY=.*$/m, `ADMIN_API_KEY=${key}`), 'the rest is the example');

    await devVars(a);
    assert.equal(await adminKeyOf(a), key, 'a second run keeps the key');

    for (const weak of ['', 'dev-admin-key-change-me', '"dev-admin-key-change-me"']) {
      await writeFile(path.join(a, '.dev.vars'), written.replace(/^ADMIN_API_KEY=.*$/m, `ADMIN_API_KEY=${weak}`));
      await devVars(a);
      const replaced = await adminKeyOf(a);
      assert.match(replaced, /^[A-Za-z0-9_-]{43}$/, `${JSON.stringify(weak)} is replaced`);
      assert.notEqual(replaced, key);
    }
    await writeFile(path.join(a, '.dev.vars'), 'OPENAI_API_KEY=sk-mine');
    await devVars(a);
    const added = await readFile(path.join(a, '.dev.vars'), 'utf8');
    assert.match(added, /^OPENAI_API_KEY=sk-mine\nADMIN_API_KEY=[A-Za-z0-9_-]{43}\n$/, 'a missing key is added, the rest kept');
  } finally {
    await Promise.all([a, b].map((dir) => rm(dir, { recursive: true, force: true })));
  }
});

test('`npm run dev` ends with the dashboard URL, the login key and the next step once the worker answers', async () => {
  const dir = await bareProject();
  try {
    await execFileAsync('bash', [path.join(dir, 'scripts', 'dev-vars.sh')]);
    const key = await adminKeyOf(dir);
    const { stdout } = await execFileAsync(process.execPath, [
      path.join(ROOT, 'scripts', 'dev-ready.mjs'), String(setup.worker.port), String(process.pid), path.join(dir, '.dev.vars'),
    ], { timeout: 30_000 });
    assert.ok(stdout.includes(`dashboard ${setup.worker.url}/`), stdout);
    assert.ok(stdout.includes(`\n  ${key}\n`), stdout);
    assert.ok(stdout.includes(path.join(dir, '.dev.vars')), stdout);
    assert.match(stdout, /`npm run demo`/);
    // Nothing is printed for a worker that never came up (wrangler exited first).
    const gone = await execFileAsync(process.execPath, [path.join(ROOT, 'scripts', 'dev-ready.mjs'), String(await freePort()), '2147483646', path.join(dir, '.dev.vars')], { timeout: 30_000 });
    assert.equal(gone.stdout, '');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
