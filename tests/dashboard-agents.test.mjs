// The dashboard's Agents and Numbers pages in headless Chromium against the real worker: the
// agent form is rendered from the served OpenAPI agent schema (every property has a control),
// creates and edits agents with exactly the values entered, duplicates them, shows the server's
// field errors at their fields and its 409 when an agent in use is deleted; numbers are added
// with owner-first ringing, moved to another agent and deleted. Screenshots go to test-output/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, eventually, UNDIALLED_TWILIO } from './harness.mjs';
import { skipBrowser, launchBrowser, newPage as openPage, shotBoth } from './browser.mjs';

let worker;
let browser;
let doc;
let viewerKey;
const state = {};

before(async () => {
  if (skipBrowser) return;
  [worker, browser] = await Promise.all([
    startWorker({ vars: { DEFAULT_FROM_NUMBER: '+15017122661', ...UNDIALLED_TWILIO } }),
    launchBrowser(),
  ]);
  doc = await (await worker.fetch('/api/v1/openapi.json')).json();
  const key = await worker.api('POST', '/api/v1/api-keys', { name: 'read only', role: 'viewer' });
  assert.equal(key.status, 201, key.text);
  viewerKey = key.body.key;
});

after(async () => {
  await browser?.close();
  await worker?.stop();
});

const newPage = async (opts) => {
  const page = await openPage(browser, worker, opts);
  page.on('dialog', (d) => d.accept());
  return page;
};

const api = async (method, path, body) => {
  const res = await worker.api(method, `/api/v1${path}`, body);
  assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${res.text}`);
  return res.body;
};

/**
 * Every leaf property path of the agent schema, walked here independently of the page's code:
 * `$ref`s followed, `oneOf [X, null]` unwrapped, nested objects descended; properties the
 * document marks "ignored: …" have no control.
 */
function schemaLeaves(schema, prefix = '') {
  const out = [];
  for (const [name, raw] of Object.entries(schema.properties ?? {})) {
    if (/^ignored\b/i.test(raw.description ?? '')) continue;
    let s = raw;
    for (;;) {
      if (s.$ref) s = doc.components.schemas[s.$ref.split('/').pop()];
      else if (s.oneOf && s.oneOf.filter((o) => o.type !== 'null' && !('const' in o)).length === 1) s = s.oneOf.find((o) => o.type !== 'null' && !('const' in o));
      else break;
    }
    const path = prefix ? `${prefix}.${name}` : name;
    if (s.properties) out.push(...schemaLeaves(s, path));
    else out.push(path);
  }
  return out;
}

const section = (page, name) => page.locator(`fieldset[data-section="${name}"]`);

test('the agent form has a control for every property of the OpenAPI agent schemas', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await page.goto(`${worker.url}/#/agents/new`);
  await page.getByRole('heading', { name: 'New agent', level: 2 }).waitFor();
  for (const schemaName of ['AgentInput', 'AgentPatch']) {
    const leaves = schemaLeaves(doc.components.schemas[schemaName]);
    assert.ok(leaves.length > 30, `${schemaName}: ${leaves.length} fields`);
    for (const required of ['name', 'system_prompt', 'voice.provider', 'session.transfer_to', 'session.idle_hangup_ms', 'stt.eot_threshold', 'callbacks.max_per_number_per_day', 'session.end_of_turn.speech_final']) {
      assert.ok(leaves.includes(required), `${schemaName} walk finds ${required}`);
    }
    const missing = [];
    for (const path of leaves) {
      const control = page.locator(`form [data-field="${path}"]:is(input, select, textarea)`);
      if ((await control.count()) !== 1) missing.push(path);
    }
    assert.deepEqual(missing, [], `${schemaName} properties without a control in the form`);
  }
  // Limits and enums come from the schema.
  assert.equal(await page.locator('[data-field="stt.eot_threshold"]').getAttribute('min'), '0.5');
  assert.equal(await page.locator('[data-field="stt.eot_threshold"]').getAttribute('max'), '0.9');
  assert.equal(await page.locator('[data-field="name"]').getAttribute('maxlength'), '200');
  const providers = await page.locator('[data-field="voice.provider"] option').allTextContents();
  assert.deepEqual(providers.slice(1), doc.components.schemas.Voice.properties.provider.enum);
  const { overflow } = await shotBoth(page, 'agent-form');
  assert.ok(overflow <= 1, `agent form overflows the phone width by ${overflow}px`);
  assert.deepEqual(page.errors, []);
});

test('create an agent in the form: the API holds exactly the values entered', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await page.locator('#nav').getByRole('link', { name: 'Agents' }).click();
  await page.getByRole('heading', { name: 'Agents', level: 2 }).waitFor();
  await page.getByRole('link', { name: 'New agent' }).click();
  await page.getByRole('heading', { name: 'New agent', level: 2 }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill('Ava');
  await page.getByLabel('System prompt', { exact: true }).fill('You confirm dental appointments.');
  await page.getByLabel('First message', { exact: true }).fill('Hi, this is Ava from the clinic.');
  await section(page, 'voice').getByLabel('Provider').selectOption('deepgram');
  await section(page, 'voice').getByLabel('Voice id').fill('aura-2-thalia-en');
  await section(page, 'llm').getByLabel('Model').fill('gpt-4o-mini');
  await section(page, 'retry').getByLabel('Max retries').fill('3');
  await section(page, 'retry').getByLabel('Spacing seconds').fill('900');
  await section(page, 'callbacks').getByLabel('Enabled').selectOption({ label: 'Yes' });
  await section(page, 'callbacks').getByLabel('Max per number per day').fill('2');
  await page.getByLabel('Allowed countries', { exact: true }).fill('US, CA');
  const session = section(page, 'session');
  await session.getByLabel('Transfer to', { exact: true }).fill('+14155550100');
  await session.getByLabel('Min interrupt words', { exact: true }).fill('2');
  await session.getByLabel('Idle hangup (ms)', { exact: true }).fill('45000');
  await session.getByLabel('Max duration (ms): off').check();
  await section(page, 'session.end_of_turn').getByLabel('Speech final').selectOption({ label: 'Yes' });
  await section(page, 'session.end_of_turn').getByLabel('Utterance end').selectOption({ label: 'No' });
  await session.getByLabel('Backchannels', { exact: true }).fill('uh-huh, right');
  const stt = section(page, 'stt');
  await stt.getByLabel('Model').fill('flux-general-en');
  await stt.getByLabel('EOT threshold', { exact: true }).fill('0.8');
  await stt.getByLabel('Eager EOT threshold', { exact: true }).fill('0.6');
  await page.getByRole('button', { name: 'Create agent' }).click();
  await page.getByRole('heading', { name: 'Agent Ava', level: 2 }).waitFor();

  const list = await api('GET', '/agents');
  const ava = list.data.find((a) => a.name === 'Ava');
  assert.ok(ava, JSON.stringify(list));
  assert.equal(new URL(page.url()).hash, `#/agents/${ava.id}`);
  assert.equal(ava.system_prompt, 'You confirm dental appointments.');
  assert.equal(ava.first_message, 'Hi, this is Ava from the clinic.');
  assert.deepEqual(ava.voice, { provider: 'deepgram', voice_id: 'aura-2-thalia-en' });
  assert.deepEqual(ava.llm, { model: 'gpt-4o-mini' });
  assert.deepEqual(ava.retry, { max_retries: 3, spacing_seconds: 900 });
  assert.deepEqual(ava.callbacks, { enabled: true, max_per_number_per_day: 2 });
  assert.deepEqual(ava.allowed_countries, ['US', 'CA']);
  assert.deepEqual(ava.session, {
    transfer_to: '+14155550100', min_interrupt_words: 2, idle_hangup_ms: 45000, max_duration_ms: null,
    end_of_turn: { speech_final: true, utterance_end: false }, backchannels: ['uh-huh', 'right'],
  });
  assert.deepEqual(ava.stt, { model: 'flux-general-en', eot_threshold: 0.8, eager_eot_threshold: 0.6 });
  state.ava = ava;
  // The edit page shows what is stored.
  assert.equal(await page.getByLabel('Idle hangup (ms)', { exact: true }).inputValue(), '45000');
  assert.equal(await page.getByLabel('Max duration (ms): off').isChecked(), true);
  assert.deepEqual(page.errors, []);
});

test('edit an agent: changed and cleared fields reach the API', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await page.goto(`${worker.url}/#/agents`);
  await page.getByRole('link', { name: 'Edit Ava', exact: true }).click();
  await page.getByRole('heading', { name: 'Agent Ava', level: 2 }).waitFor();
  await page.getByLabel('First message', { exact: true }).fill('Hello from Ava.');
  await section(page, 'llm').getByLabel('Model').fill('');
  await section(page, 'session').getByLabel('Idle hangup (ms)', { exact: true }).fill('60000');
  await section(page, 'session').getByLabel('Max duration (ms): off').uncheck();
  await section(page, 'session').getByLabel('Max duration (ms)', { exact: true }).fill('900000');
  await section(page, 'session').getByLabel('Backchannels', { exact: true }).fill('');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('#agent-status').filter({ hasText: 'Saved' }).waitFor();
  const ava = await api('GET', `/agents/${state.ava.id}`);
  assert.equal(ava.first_message, 'Hello from Ava.');
  assert.equal(ava.llm, null, 'an emptied section is cleared');
  assert.deepEqual(ava.session, {
    transfer_to: '+14155550100', min_interrupt_words: 2, idle_hangup_ms: 60000, max_duration_ms: 900000,
    end_of_turn: { speech_final: true, utterance_end: false },
  }, 'a field emptied inside a section is removed; the others stay');
  assert.deepEqual(ava.voice, state.ava.voice, 'untouched sections keep their values');
  assert.deepEqual(ava.stt, state.ava.stt);
  state.ava = ava;
  assert.deepEqual(page.errors, []);
});

test('a field error from the server is shown at its field, and nothing is saved', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await page.goto(`${worker.url}/#/agents/${state.ava.id}`);
  await page.getByRole('heading', { name: 'Agent Ava', level: 2 }).waitFor();
  const transfer = section(page, 'session').getByLabel('Transfer to', { exact: true });
  await transfer.fill('+19005550100');
  await page.getByRole('button', { name: 'Save changes' }).click();
  const note = page.locator('#agent-session-transfer_to-error');
  await note.waitFor();
  assert.match(await note.innerText(), /premium/i);
  assert.equal(await transfer.getAttribute('aria-invalid'), 'true');
  // The note sits right after its input, inside the field.
  assert.equal(await note.evaluate((n) => n.previousElementSibling.dataset.field), 'session.transfer_to');
  assert.match(await page.getByRole('alert').first().innerText(), /invalid_fields/);
  assert.equal((await api('GET', `/agents/${state.ava.id}`)).session.transfer_to, '+14155550100');
  assert.deepEqual(page.errors, []);
});

test('duplicate an agent: the copy has every setting of the original', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await page.goto(`${worker.url}/#/agents`);
  await page.getByRole('button', { name: 'Duplicate Ava', exact: true }).click();
  await page.getByRole('heading', { name: 'Agent Ava (copy)', level: 2 }).waitFor();
  const copy = (await api('GET', '/agents')).data.find((a) => a.name === 'Ava (copy)');
  assert.ok(copy);
  assert.notEqual(copy.id, state.ava.id);
  assert.equal(new URL(page.url()).hash, `#/agents/${copy.id}`);
  for (const key of ['system_prompt', 'first_message', 'voice', 'llm', 'retry', 'callbacks', 'allowed_countries', 'session', 'stt']) {
    assert.deepEqual(copy[key], state.ava[key], key);
  }
  state.copy = copy;
  await page.goto(`${worker.url}/#/agents`);
  await page.getByRole('link', { name: 'Ava (copy)', exact: true }).waitFor();
  const { overflow } = await shotBoth(page, 'agents');
  assert.ok(overflow <= 1, `agents list overflows the phone width by ${overflow}px`);
  assert.deepEqual(page.errors, []);
});

test('add a number with owner-first ringing, attached to an agent chosen by name', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await page.locator('#nav').getByRole('link', { name: 'Numbers' }).click();
  await page.getByRole('heading', { name: 'Numbers', level: 2 }).waitFor();
  const form = page.locator('form', { has: page.getByRole('heading', { name: 'Add a number' }) });
  await form.getByLabel('Number', { exact: true }).fill('+15550107777');
  await form.getByLabel('Agent', { exact: true }).selectOption({ label: 'Ava' });
  await form.getByLabel('Owner phone', { exact: true }).fill('+14155550199');
  await form.getByLabel('Ring the owner first').check();
  await form.getByRole('button', { name: 'Add number' }).click();
  const row = page.locator('#numbers-list tr', { hasText: '+15550107777' });
  await row.waitFor();
  assert.match(await row.innerText(), /Ava/);
  assert.match(await row.innerText(), /for Ava's calls/, 'the first number of an agent is its caller id');
  const numbers = (await api('GET', '/numbers')).data;
  const n = numbers.find((x) => x.number === '+15550107777');
  assert.ok(n, JSON.stringify(numbers));
  assert.equal(n.agent_id, state.ava.id);
  assert.equal(n.owner_phone, '+14155550199');
  assert.equal(n.ring_owner_first, true);
  state.number = n;
  // A server refusal shows at the field: a number registered already.
  await form.getByLabel('Number', { exact: true }).fill('+15550107777');
  await form.getByLabel('Agent', { exact: true }).selectOption({ label: 'Ava (copy)' });
  await form.getByRole('button', { name: 'Add number' }).click();
  await form.getByRole('alert').filter({ hasText: 'already registered' }).waitFor();
  const { overflow } = await shotBoth(page, 'numbers');
  assert.ok(overflow <= 1, `numbers overflow the phone width by ${overflow}px`);
  assert.deepEqual(page.errors, []);
});

test('deleting an agent a number uses is refused with the 409 shown; after moving the number it succeeds', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await page.goto(`${worker.url}/#/agents`);
  await page.getByRole('button', { name: 'Delete Ava', exact: true }).click();
  const alert = page.getByRole('alert').filter({ hasText: 'agent_in_use' });
  await alert.waitFor();
  assert.match(await alert.innerText(), /in use by number \+15550107777/);
  assert.equal((await worker.api('GET', `/api/v1/agents/${state.ava.id}`)).status, 200, 'still there');

  await page.locator('#nav').getByRole('link', { name: 'Numbers' }).click();
  await page.getByRole('button', { name: 'Edit +15550107777' }).click();
  const edit = page.locator('#number-edit form');
  await edit.getByLabel('Agent', { exact: true }).selectOption({ label: 'Ava (copy)' });
  await edit.getByLabel('Ring the owner first').uncheck();
  await edit.getByRole('button', { name: 'Save number' }).click();
  await page.locator('#numbers-list tr', { hasText: 'Ava (copy)' }).waitFor();
  const moved = await api('GET', `/numbers/${state.number.id}`);
  assert.equal(moved.agent_id, state.copy.id);
  assert.equal(moved.ring_owner_first, false);
  assert.equal(moved.owner_phone, '+14155550199');

  await page.locator('#nav').getByRole('link', { name: 'Agents' }).click();
  await page.getByRole('button', { name: 'Delete Ava', exact: true }).click();
  await eventually(async () => (await worker.api('GET', `/api/v1/agents/${state.ava.id}`)).status === 404, { message: 'agent deleted' });
  await page.locator('#agents-list').getByRole('link', { name: 'Ava', exact: true }).waitFor({ state: 'detached' });
  assert.equal(await page.getByRole('alert').filter({ hasText: 'agent_in_use' }).count(), 0);

  // And a number is deleted from its row.
  await page.locator('#nav').getByRole('link', { name: 'Numbers' }).click();
  await page.getByRole('button', { name: 'Delete +15550107777' }).click();
  await page.getByText('No numbers yet.').waitFor();
  assert.equal((await worker.api('GET', `/api/v1/numbers/${state.number.id}`)).status, 404);
  assert.deepEqual(page.errors, []);
});

test('a read-only key sees the pages; the controls it cannot use carry data-needs', { skip: skipBrowser }, async () => {
  await api('POST', '/numbers', { number: '+15550108888', agent_id: state.copy.id });
  const page = await newPage({ key: viewerKey });
  await page.goto(`${worker.url}/#/agents`);
  await page.getByRole('link', { name: 'Ava (copy)', exact: true }).waitFor();
  // public/js/roles.js: a link the key cannot follow loses its href (so it is no longer a link);
  // buttons are disabled; both keep data-needs and say why.
  const newAgent = page.locator('a[data-needs]', { hasText: 'New agent' });
  assert.equal(await newAgent.getAttribute('data-needs'), 'administer');
  assert.equal(await newAgent.getAttribute('aria-disabled'), 'true');
  for (const name of ['Duplicate Ava (copy)', 'Delete Ava (copy)']) {
    const button = page.getByRole('button', { name, exact: true });
    assert.equal(await button.getAttribute('data-needs'), 'administer', name);
    assert.ok(await button.isDisabled(), `${name} is disabled for a viewer`);
  }
  await page.getByRole('link', { name: 'Ava (copy)', exact: true }).click();
  await page.getByRole('heading', { name: 'Agent Ava (copy)', level: 2 }).waitFor();
  assert.equal(await page.locator('form.agent-form').getAttribute('data-needs'), 'administer');
  assert.equal(await section(page, 'voice').getByLabel('Voice id').inputValue(), 'aura-2-thalia-en', 'the settings are readable');
  await page.locator('#nav').getByRole('link', { name: 'Numbers' }).click();
  await page.locator('#numbers-list tr', { hasText: '+15550108888' }).waitFor();
  for (const name of ['Edit +15550108888', 'Delete +15550108888']) {
    const button = page.getByRole('button', { name });
    assert.equal(await button.getAttribute('data-needs'), 'administer', name);
    assert.ok(await button.isDisabled(), `${name} is disabled for a viewer`);
  }
  // Only the bootstrap ADMIN_API_KEY assigns numbers (the API's rule).
  assert.equal(await page.locator('form', { has: page.getByRole('heading', { name: 'Add a number' }) }).getAttribute('data-needs'), 'bootstrap');
  assert.deepEqual(page.errors, []);
});
