// Numbers: the phone numbers the worker answers, each with the agent that answers it (and the
// caller id of that agent's scheduled calls), optionally ringing the owner's phone first.
import { api } from '../api.js';
import { h, table, fmtTime, field, pageHeader, errorBox, showError, announce, submitForm } from '../dom.js';

/** A select of the tenant's agents by name. */
function agentSelect(agents, attrs, selected) {
  return h('select', { required: true, ...attrs },
    h('option', { value: '' }, agents.length ? 'Choose an agent' : 'No agents yet'),
    agents.map((a) => h('option', { value: a.id, selected: a.id === selected }, a.name)));
}

/** Owner phone + ring-owner-first controls, shared by the create and edit forms. */
function ownerControls(prefix, number) {
  const owner = h('input', { id: `${prefix}-owner`, name: 'owner_phone', 'data-field': 'owner_phone', type: 'tel', autocomplete: 'off', placeholder: '+14155550100', value: number?.owner_phone ?? '' });
  const first = h('input', { id: `${prefix}-ring-first`, name: 'ring_owner_first', 'data-field': 'ring_owner_first', type: 'checkbox', checked: Boolean(number?.ring_owner_first) });
  const nodes = [
    field('Owner phone', owner, 'your own phone; rung first when the box below is ticked, the agent answers if you do not'),
    h('div', { class: 'field checkbox' }, h('label', { for: first.id }, first, ' Ring the owner first')),
  ];
  return { owner, first, nodes };
}

export async function numbersPage() {
  const [numbers, agents] = await Promise.all([api('GET', '/numbers?limit=100'), api('GET', '/agents?limit=100')]);
  let agentList = agents.data;
  const errors = errorBox();
  const agentName = (id) => agentList.find((a) => a.id === id)?.name ?? id;

  // The caller id of an agent's scheduled calls is the first number registered for it.
  const callerIds = (rows) => {
    const first = new Map();
    for (const n of [...rows].sort((a, b) => a.created_at.localeCompare(b.created_at))) if (!first.has(n.agent_id)) first.set(n.agent_id, n.id);
    return new Set(first.values());
  };

  const editBox = h('div', { id: 'number-edit' });
  const edit = (n) => {
    const errs = errorBox();
    const agent = agentSelect(agentList, { id: 'edit-agent', name: 'agent_id', 'data-field': 'agent_id' }, n.agent_id);
    const { owner, first, nodes } = ownerControls('edit', n);
    const form = h('form', {
      class: 'card', 'aria-labelledby': 'edit-number-title', novalidate: true, 'data-needs': 'administer',
      onsubmit: async (e) => {
        e.preventDefault();
        showError(errs, null, form);
        if (!form.reportValidity()) return;
        try {
          await api('PATCH', `/numbers/${encodeURIComponent(n.id)}`, {
            agent_id: agent.value, owner_phone: owner.value.trim() || null, ring_owner_first: first.checked,
          });
          announce(`Number ${n.number} saved.`);
          editBox.replaceChildren();
          await redraw();
        } catch (err) {
          showError(errs, err, form);
        }
      },
    },
    h('h3', { id: 'edit-number-title' }, `Edit ${n.number}`),
    field('Agent', agent, 'the agent that answers this number'),
    nodes, errs,
    h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Save number'),
      h('button', { type: 'button', class: 'secondary', onclick: () => editBox.replaceChildren() }, 'Cancel')));
    editBox.replaceChildren(form);
    agent.focus();
  };

  const remove = async (n) => {
    if (!confirm(`Delete ${n.number}? Calls to it are no longer answered.`)) return;
    try {
      await api('DELETE', `/numbers/${encodeURIComponent(n.id)}`);
      announce(`Number ${n.number} deleted.`);
      await redraw();
    } catch (err) {
      showError(errors, err);
    }
  };

  let callerIdSet = callerIds(numbers.data);
  const columns = [
    { label: 'Number', cell: (n) => h('span', { class: 'mono' }, n.number) },
    { label: 'Agent', cell: (n) => h('a', { href: `#/agents/${encodeURIComponent(n.agent_id)}` }, agentName(n.agent_id)) },
    { label: 'Owner first', cell: (n) => (n.ring_owner_first ? `yes, ${n.owner_phone}` : n.owner_phone ? `no (${n.owner_phone})` : 'no') },
    { label: 'Caller id', cell: (n) => (callerIdSet.has(n.id) ? `for ${agentName(n.agent_id)}'s calls` : '—') },
    { label: 'Created', cell: (n) => fmtTime(n.created_at) },
    {
      label: 'Actions',
      cell: (n) => h('div', { class: 'row-actions' },
        h('button', { type: 'button', class: 'small secondary', 'data-needs': 'administer', 'aria-label': `Edit ${n.number}`, onclick: () => edit(n) }, 'Edit'),
        h('button', { type: 'button', class: 'small danger', 'data-needs': 'administer', 'aria-label': `Delete ${n.number}`, onclick: () => remove(n) }, 'Delete')),
    },
  ];
  const list = h('div', { id: 'numbers-list' });
  const draw = (rows) => {
    callerIdSet = callerIds(rows);
    list.replaceChildren(table({ caption: `${rows.length} number${rows.length === 1 ? '' : 's'}`, columns, rows, empty: 'No numbers yet.' }));
  };
  const redraw = async () => {
    const [n, a] = await Promise.all([api('GET', '/numbers?limit=100'), api('GET', '/agents?limit=100')]);
    agentList = a.data;
    draw(n.data);
  };
  draw(numbers.data);

  const number = h('input', { id: 'new-number', name: 'number', 'data-field': 'number', type: 'tel', required: true, pattern: '^\\+[1-9][0-9]{1,14}$', placeholder: '+14155550123', autocomplete: 'off' });
  const agent = agentSelect(agentList, { id: 'new-agent', name: 'agent_id', 'data-field': 'agent_id' });
  const owner = ownerControls('new');
  const createErrors = errorBox();
  const form = h('form', {
    class: 'card', 'aria-labelledby': 'new-number-title', novalidate: true, 'data-needs': 'bootstrap',
    onsubmit: submitForm(createErrors, async () => {
      const body = { number: number.value.trim(), agent_id: agent.value, ring_owner_first: owner.first.checked };
      if (owner.owner.value.trim()) body.owner_phone = owner.owner.value.trim();
      const created = await api('POST', '/numbers', body);
      form.reset();
      announce(`Number ${created.number} added.`);
      await redraw();
    }),
  },
  h('h3', { id: 'new-number-title' }, 'Add a number'),
  h('p', { class: 'hint' }, 'Point the number at this worker at your carrier first (see docs/operations.md). Only the deployment\'s ADMIN_API_KEY registers numbers.'),
  field('Number', number, 'E.164, e.g. +14155550123'),
  field('Agent', agent, 'the agent that answers it; its scheduled calls use this number as caller id'),
  owner.nodes, createErrors,
  h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Add number')));

  return h('section', { 'aria-labelledby': 'page-title' }, pageHeader('Numbers'), errors, list, editBox, form);
}
