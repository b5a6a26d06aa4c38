// The OpenAPI document (public/api/v1/openapi.json) describes what the worker really does: Schemathesis
// (PyPI, pinned, installed by scripts/bootstrap.sh into tests/.venv-schemathesis) generates
// requests from it — the document's examples, the boundaries of every limit, then random valid and
// invalid data — and sends them to the running worker with every check on: no 5xx, only
// documented statuses, bodies and headers matching the response schemas, valid data accepted,
// invalid data refused, undeclared methods answered 405 with `Allow`, authentication not ignored.
// Bounded examples per operation and a fixed seed keep it to a few minutes and repeatable.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { startWorker, ROOT, TEST_VARS } from './harness.mjs';

const SCHEMATHESIS = path.join(ROOT, 'tests', '.venv-schemathesis', 'bin', 'schemathesis');
const HOOKS = path.join(ROOT, 'tests', 'schemathesis', 'hooks.py');
// Every check on ([checks] enabled), with the few per-operation exceptions it explains.
const CONFIG = path.join(ROOT, 'tests', 'schemathesis', 'schemathesis.toml');
const MAX_EXAMPLES = 10;
const SEED = 20261207;

let worker;
let agentId;
let sink;
let sinkUrl;
before(async () => {
  // Where the worker's outbound requests go (endpoint deliveries, provider APIs): only
  // 127.0.0.1 is reachable here. It answers every request 200 {}.
  sink = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise((resolve) => sink.listen(0, '127.0.0.1', resolve));
  sinkUrl = `http://127.0.0.1:${sink.address().port}`;
  worker = await startWorker({
    vars: {
      DEFAULT_FROM_NUMBER: '+15550009999',
      // Every dial provider and e-mail configured, so scheduling is never refused as
      // feature_unavailable (tests/config-checks.test.mjs covers that refusal).
      TWILIO_ACCOUNT_SID: 'AC' + 'f'.repeat(32),
      TELNYX_API_KEY: 'KEY_schemathesis',
      BLAND_API_KEY: 'bland-schemathesis',
      RESEND_API_KEY: 're_schemathesis',
      EMAIL_FROM: 'Acme <bookings@example.com>',
      PUBLIC_BASE_URL: 'https://agent.example.com',
      BLAND_API_URL: sinkUrl,
      RESEND_API_URL: sinkUrl,
      TWILIO_API_URL: sinkUrl,
      TELNYX_API_URL: sinkUrl,
      OPENAI_BASE_URL: sinkUrl,
      ELEVENLABS_URL: sinkUrl,
      // Thousands of requests in a few minutes from one key and address: the limiters would
      // answer 429 (documented on every route, and tested in security-operators) to most.
      API_RATE_LIMIT_PER_MINUTE: '0',
      AUTH_FAILURE_LIMIT_PER_MINUTE: '0',
    },
  });
  const doc = await (await worker.fetch('/api/v1/openapi.json')).json();
  const agent = await worker.api('POST', '/api/v1/agents', doc.paths['/api/v1/agents'].post.requestBody.content['application/json'].example);
  assert.equal(agent.status, 201, agent.text);
  agentId = agent.body.id;
});
after(async () => {
  await worker?.stop();
  sink?.close();
});

/** Runs the CLI; resolves to {code, output}. */
function run(args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(SCHEMATHESIS, args, { cwd: ROOT, env: { ...process.env, ...env } });
    const output = [];
    child.stdout.on('data', (c) => output.push(c));
    child.stderr.on('data', (c) => output.push(c));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, output: Buffer.concat(output).toString() }));
  });
}

test('Schemathesis finds no difference between the OpenAPI document and the worker', async () => {
  assert.ok(existsSync(SCHEMATHESIS), `${SCHEMATHESIS} is missing: run scripts/bootstrap.sh`);
  const reports = path.join(ROOT, 'tests', '.tmp', 'schemathesis');
  await mkdir(reports, { recursive: true });
  const { code, output } = await run(
    [
      '--config-file', CONFIG,
      'run', `${worker.url}/api/v1/openapi.json`,
      '--url', worker.url,
      '--header', `Authorization: Bearer ${TEST_VARS.ADMIN_API_KEY}`,
      '--phases', 'examples,coverage,fuzzing',
      '--max-examples', String(MAX_EXAMPLES),
      '--seed', String(SEED),
      '--generation-database', 'none',
      // How fast Hypothesis draws data depends on the machine's load, not on the API: the agent
      // schema's patterns tripped the "too slow" health check on a loaded machine.
      '--suppress-health-check', 'too_slow',
      '--workers', '2',
      '--no-color',
      '--output-sanitize', 'false',
      '--report', 'junit', '--report-dir', reports,
    ],
    { SCHEMATHESIS_HOOKS: HOOKS, PHONE_AGENT_AGENT_ID: agentId, PHONE_AGENT_SINK_URL: `${sinkUrl}/hook` },
  );
  const summary = output.slice(output.lastIndexOf('SUMMARY'));
  assert.equal(code, 0, `schemathesis exited ${code}:\n${output.length > 60_000 ? output.slice(-60_000) : output}`);
  const selected = summary.match(/Selected: (\d+)\/(\d+)/);
  const tested = summary.match(/Tested: (\d+)/);
  assert.ok(selected && tested, `a summary of the operations tested:\n${summary}`);
  assert.equal(Number(selected[1]), Number(selected[2]), 'every operation of the document selected');
  assert.equal(Number(tested[1]), Number(selected[2]), 'every selected operation tested');
  assert.doesNotMatch(summary, /failures?,|errors?,/, 'no failures or errors');
});
