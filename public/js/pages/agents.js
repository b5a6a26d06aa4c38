// Agents: list, create, edit, duplicate, delete. The form is rendered from the agent schema of
// the served OpenAPI document (the one the server's validation is tested against), so every
// field the API accepts is in the form and the two cannot drift.
import { api } from '../api.js';
import { h, table, fmtTime, field, pageHeader, errorBox, showError, announce } from '../dom.js';

let docPromise = null;

/** The served OpenAPI document, fetched once per page load. */
export function openapi() {
  docPromise ??= fetch('/api/v1/openapi.json').then((res) => {
    if (!res.ok) throw new Error(`the API description is unavailable (HTTP ${res.status})`);
    return res.json();
  }).catch((err) => {
    docPromise = null;
    throw err;
  });
  return docPromise;
}

/** Follows `$ref` and unwraps `oneOf: [X, {type: null}]` to X; `nullable` says whether null was allowed. */
function resolve(doc, schema) {
  let nullable = false;
  let s = schema ?? {};
  for (let i = 0; i < 5; i++) {
    if (s.$ref) {
      const { description } = s;
      s = { ...doc.components.schemas[s.$ref.split('/').pop()] };
      if (description && !s.description) s.description = description;
      continue;
    }
    if (Array.isArray(s.oneOf)) {
      const options = s.oneOf.filter((o) => o.type !== 'null' && !('const' in o));
      nullable ||= options.length < s.oneOf.length;
      if (options.length === 1) {
        s = { ...options[0], description: options[0].description ?? s.description };
        continue;
      }
    }
    break;
  }
  const types = [].concat(s.type ?? []);
  if (types.includes('null')) nullable = true;
  const type = types.find((t) => t !== 'null') ?? (s.properties ? 'object' : s.enum ? 'string' : 'string');
  return { schema: s, type, nullable };
}

/** A property the server documents as ignored ("ignored: …") has no control. */
export const ignored = (schema) => /^ignored\b/i.test(schema?.description ?? '');

/** Every leaf field path of the agent schema (e.g. `session.idle_hangup_ms`), as the form renders them. */
export function schemaFields(doc, schema, prefix = '') {
  const out = [];
  for (const [name, raw] of Object.entries(schema.properties ?? {})) {
    if (ignored(raw)) continue;
    const { schema: s, type } = resolve(doc, raw);
    const path = prefix ? `${prefix}.${name}` : name;
    if (type === 'object' && s.properties) out.push(...schemaFields(doc, s, path));
    else out.push(path);
  }
  return out;
}

const humanize = (name) => {
  const words = name.replaceAll('_', ' ').replace(/\bms\b/, '(ms)').replace(/\bstt\b/i, 'STT').replace(/\bllm\b/i, 'LLM')
    .replace(/\beot\b/i, 'EOT').replace(/\bid\b/, 'id');
  return words.charAt(0).toUpperCase() + words.slice(1);
};

const SECTION_TITLES = {
  voice: 'Voice', llm: 'LLM', retry: 'Retries (unanswered or busy calls)', callbacks: 'Tools: call backs',
  session: 'Session and tools', stt: 'Speech to text', end_of_turn: 'End of turn',
};

/** Builds the controls of `schema`'s properties; each registers a reader and a writer in `fields`. */
function renderObject(doc, schema, prefix, fields, requiredTop) {
  const nodes = [];
  for (const [name, raw] of Object.entries(schema.properties ?? {})) {
    if (ignored(raw)) continue;
    const path = prefix ? `${prefix}.${name}` : name;
    const { schema: s, type, nullable } = resolve(doc, raw);
    const required = (schema.required ?? []).includes(name);
    const hint = s.description ?? raw.description;
    if (type === 'object' && s.properties) {
      const inner = renderObject(doc, s, path, fields, false);
      nodes.push(h('fieldset', { class: 'agent-section', 'data-field': path, dataset: { section: path } },
        h('legend', {}, SECTION_TITLES[name] ?? humanize(name)),
        hint ? h('p', { class: 'hint' }, hint) : null,
        inner));
      continue;
    }
    nodes.push(leaf(path, name, s, type, nullable, required && requiredTop, hint, fields));
  }
  return nodes;
}

/** One control for a scalar or list field. */
function leaf(path, name, s, type, nullable, required, hint, fields) {
  const id = `agent-${path.replaceAll('.', '-')}`;
  const label = humanize(name);
  const common = { id, name: path, 'data-field': path };
  if (type === 'boolean') {
    const control = h('select', common,
      h('option', { value: '' }, '(default)'), h('option', { value: 'true' }, 'Yes'), h('option', { value: 'false' }, 'No'));
    fields.push({
      path,
      read: () => (control.value === '' ? undefined : control.value === 'true'),
      write: (v) => { control.value = v === true ? 'true' : v === false ? 'false' : ''; },
    });
    return field(label, control, hint);
  }
  if (type === 'string' && Array.isArray(s.enum)) {
    const control = h('select', { ...common, required },
      required ? null : h('option', { value: '' }, '(default)'),
      s.enum.map((v) => h('option', { value: v }, v)));
    fields.push({ path, read: () => control.value || undefined, write: (v) => { control.value = v ?? ''; } });
    return field(label, control, hint);
  }
  if (type === 'array' && (s.items?.$ref || s.items?.type === 'object')) {
    // A list of objects (http_tools) is edited as JSON; what does not parse goes to the server
    // as typed, whose 422 says what is wrong.
    const control = h('textarea', { ...common, rows: 8, spellcheck: 'false', 'data-json': 'true' });
    fields.push({
      path,
      read: () => {
        const text = control.value.trim();
        if (text === '') return undefined;
        try {
          return JSON.parse(text);
        } catch {
          return text;
        }
      },
      write: (v) => { control.value = Array.isArray(v) && v.length ? JSON.stringify(v, null, 2) : ''; },
    });
    return field(label, control, [hint?.replace(/\.\s*$/, ''), 'a JSON array'].filter(Boolean).join('; '));
  }
  if (type === 'array') {
    const items = s.items ?? {};
    const control = h('input', { ...common, type: 'text', autocomplete: 'off', spellcheck: 'false' });
    const listHint = [hint?.replace(/\.\s*$/, ''), items.enum ? 'comma-separated codes' : 'comma-separated'].filter(Boolean).join('; ');
    fields.push({
      path,
      read: () => {
        const list = control.value.split(',').map((x) => x.trim()).filter(Boolean);
        return list.length ? list : undefined;
      },
      write: (v) => { control.value = Array.isArray(v) ? v.join(', ') : ''; },
    });
    return field(label, control, listHint);
  }
  if (type === 'integer' || type === 'number') {
    const control = h('input', {
      ...common, type: 'number', inputmode: type === 'integer' ? 'numeric' : 'decimal',
      step: type === 'integer' ? '1' : 'any', min: s.minimum, max: s.maximum, required,
    });
    // Where the schema says what null means ("null: never"), null is a choice of its own ("off");
    // left empty, the field keeps the default.
    const off = nullable && /\bnull\b/.test(hint ?? '') ? h('input', { type: 'checkbox', id: `${id}-off`, 'data-off': path }) : null;
    if (off) off.addEventListener('change', () => { control.disabled = off.checked; });
    fields.push({
      path,
      read: () => {
        if (off?.checked) return null;
        if (control.value === '') return undefined;
        return Number(control.value);
      },
      write: (v) => {
        if (off) off.checked = v === null || v === false;
        control.disabled = Boolean(off?.checked);
        control.value = typeof v === 'number' ? String(v) : '';
      },
    });
    const node = field(label, control, hint);
    if (off) node.append(h('label', { class: 'off-toggle', for: off.id }, off, ` ${label}: off`));
    return node;
  }
  const long = (s.maxLength ?? 0) > 1000;
  const control = long
    ? h('textarea', { ...common, rows: name === 'system_prompt' ? 6 : 3, maxlength: s.maxLength, required })
    : h('input', { ...common, type: 'text', autocomplete: 'off', maxlength: s.maxLength, required });
  fields.push({
    path,
    read: () => (control.value.trim() === '' ? undefined : control.value),
    write: (v) => { control.value = typeof v === 'string' ? v : ''; },
  });
  return field(label, control, hint);
}

/** The API body from the controls. `clear`: top-level fields left empty are sent as null (PATCH). */
function collect(fields, topLevel, clear) {
  const body = {};
  for (const f of fields) {
    const value = f.read();
    if (value === undefined) continue;
    const parts = f.path.split('.');
    let target = body;
    for (const p of parts.slice(0, -1)) target = target[p] ??= {};
    target[parts.at(-1)] = value;
  }
  if (clear) for (const name of topLevel) if (!(name in body)) body[name] = null;
  return body;
}

/** Writes an agent's values into the controls. */
function fill(fields, agent) {
  for (const f of fields) f.write(f.path.split('.').reduce((v, p) => (v == null ? undefined : v[p]), agent));
}

/** The body that creates a copy of `agent`: its fields the create schema accepts, nulls left out. */
export function copyBody(doc, agent, name) {
  const props = doc.components.schemas.AgentInput.properties;
  const body = {};
  for (const key of Object.keys(props)) if (agent[key] !== null && agent[key] !== undefined) body[key] = agent[key];
  body.name = name;
  return body;
}

async function deleteAgent(agent, errors, redraw) {
  if (!confirm(`Delete agent ${agent.name}?`)) return;
  try {
    await api('DELETE', `/agents/${encodeURIComponent(agent.id)}`);
    announce(`Agent ${agent.name} deleted.`);
    await redraw();
  } catch (err) {
    showError(errors, err);
  }
}

async function duplicate(agent, navigate, errors) {
  try {
    const doc = await openapi();
    const copy = await api('POST', '/agents', copyBody(doc, agent, `${agent.name} (copy)`.slice(0, 200)));
    announce(`Agent ${copy.name} created.`);
    navigate(`#/agents/${encodeURIComponent(copy.id)}`);
  } catch (err) {
    showError(errors, err);
  }
}

export async function agentsPage(ctx) {
  const errors = errorBox();
  const [agents, numbers] = await Promise.all([api('GET', '/agents?limit=100'), api('GET', '/numbers?limit=100')]);
  const numbersOf = (id) => numbers.data.filter((n) => n.agent_id === id).map((n) => n.number);
  const act = (fn) => async (ev) => {
    const button = ev.currentTarget;
    button.disabled = true;
    try {
      await fn();
    } finally {
      button.disabled = false;
    }
  };
  const columns = [
    { label: 'Name', cell: (a) => h('a', { href: `#/agents/${encodeURIComponent(a.id)}` }, a.name) },
    { label: 'Voice', cell: (a) => (a.voice ? [a.voice.provider, a.voice.voice_id ? ` · ${a.voice.voice_id}` : ''].join('') : 'default') },
    { label: 'LLM', cell: (a) => a.llm?.model ?? 'default' },
    { label: 'Numbers', cell: (a) => numbersOf(a.id).join(', ') || '—' },
    { label: 'Updated', cell: (a) => fmtTime(a.updated_at) },
    {
      label: 'Actions',
      cell: (a) => h('div', { class: 'row-actions' },
        h('a', { class: 'button small secondary', href: `#/agents/${encodeURIComponent(a.id)}`, 'aria-label': `Edit ${a.name}` }, 'Edit'),
        h('button', { type: 'button', class: 'small secondary', 'data-needs': 'administer', 'aria-label': `Duplicate ${a.name}`, onclick: act(() => duplicate(a, ctx.navigate, errors)) }, 'Duplicate'),
        h('button', { type: 'button', class: 'small danger', 'data-needs': 'administer', 'aria-label': `Delete ${a.name}`, onclick: act(() => deleteAgent(a, errors, redraw)) }, 'Delete')),
    },
  ];
  const list = h('div', { id: 'agents-list' });
  const draw = (rows) => list.replaceChildren(table({ caption: `${rows.length} agent${rows.length === 1 ? '' : 's'}`, columns, rows, empty: 'No agents yet: create one to answer your numbers.' }));
  const redraw = async () => {
    const [a, n] = await Promise.all([api('GET', '/agents?limit=100'), api('GET', '/numbers?limit=100')]);
    numbers.data = n.data;
    draw(a.data);
  };
  draw(agents.data);
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader('Agents', h('a', { class: 'button', href: '#/agents/new', 'data-needs': 'administer' }, 'New agent')),
    errors, list);
}

/** `#/agents/new` (create) and `#/agents/{id}` (edit). */
export async function agentFormPage(ctx, id) {
  const creating = id === 'new';
  const [doc, agent] = await Promise.all([openapi(), creating ? null : api('GET', `/agents/${encodeURIComponent(id)}`)]);
  const schema = doc.components.schemas[creating ? 'AgentInput' : 'AgentPatch'];
  const required = doc.components.schemas.AgentInput.required ?? [];
  const fields = [];
  const controls = renderObject(doc, { ...schema, required }, '', fields, true);
  const errors = errorBox();
  const topLevel = Object.keys(schema.properties).filter((k) => !ignored(schema.properties[k]));
  const form = h('form', {
    class: 'card agent-form', 'aria-labelledby': 'page-title', novalidate: true, 'data-needs': 'administer',
    onsubmit: async (e) => {
      e.preventDefault();
      showError(errors, null, form);
      if (!form.reportValidity()) return;
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      try {
        const saved = creating
          ? await api('POST', '/agents', collect(fields, topLevel, false))
          : await api('PATCH', `/agents/${encodeURIComponent(id)}`, collect(fields, topLevel, true));
        announce(`Agent ${saved.name} saved.`);
        if (creating) ctx.navigate(`#/agents/${encodeURIComponent(saved.id)}`);
        else {
          fill(fields, saved);
          status.textContent = `Saved ${fmtTime(saved.updated_at)}.`;
        }
      } catch (err) {
        showError(errors, err, form);
      } finally {
        button.disabled = false;
      }
    },
  }, controls, errors,
  h('div', { class: 'buttons' },
    h('button', { type: 'submit' }, creating ? 'Create agent' : 'Save changes'),
    h('a', { class: 'button secondary', href: '#/agents' }, 'Back to agents')));
  const status = h('p', { class: 'muted', id: 'agent-status', role: 'status' });
  if (agent) fill(fields, agent);
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader(creating ? 'New agent' : `Agent ${agent.name}`),
    agent ? h('p', { class: 'muted' }, `${agent.id} · created ${fmtTime(agent.created_at)}`) : null,
    status, form);
}
