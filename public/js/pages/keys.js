// API keys of the tenant: list, create with a role (the key shown once, with a copy button),
// revoke. Every call here needs an admin key (src/routes.rs).
import { api } from '../api.js';
import { h, table, badge, fmtTime, field, pageHeader, errorBox, showError, announce, secretOnce, submitForm } from '../dom.js';
import { currentMe } from '../roles.js';

export const ROLES = [
  ['viewer', 'viewer: read only'],
  ['operator', 'operator: calls, replay, redrive'],
  ['admin', 'admin: everything in the tenant'],
];

export async function keysPage() {
  const first = await api('GET', '/api-keys?limit=100');
  const me = currentMe();
  const notice = h('div', { id: 'key-notice' });
  const errors = errorBox();

  const name = h('input', { name: 'name', type: 'text', required: true, maxlength: 100, autocomplete: 'off' });
  const role = h('select', { name: 'role' }, ROLES.map(([value, label]) => h('option', { value }, label)));
  const createErrors = errorBox();
  const form = h('form', {
    class: 'card', 'aria-labelledby': 'new-key-title', novalidate: true, 'data-needs': 'administer',
    onsubmit: submitForm(createErrors, async () => {
      // A new key replaces the previous one's notice: one secret on screen at a time.
      notice.replaceChildren();
      const created = await api('POST', '/api-keys', { name: name.value.trim(), role: role.value });
      form.reset();
      announce(`Key ${created.name} created.`);
      await redraw();
      notice.replaceChildren(secretOnce({
        title: `Key “${created.name}” created (${created.role})`,
        label: 'API key',
        secret: created.key,
        note: 'This is the only time the key is shown: copy it now and keep it somewhere safe. Only its hash is stored.',
      }));
    }),
  },
  h('h3', { id: 'new-key-title' }, 'Create a key'),
  h('div', { class: 'row' }, field('Name', name, 'What or who uses it, e.g. “CRM sync”'), field('Role', role)),
  createErrors,
  h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Create key')));

  const revoke = async (button, k) => {
    const own = me && me.key_id === k.id;
    const question = own
      ? `Revoke “${k.name}”? It is the key you are logged in with: you will be logged out.`
      : `Revoke “${k.name}” (${k.prefix}…)? Anything using it gets 401 from now on.`;
    if (!confirm(question)) return;
    button.disabled = true;
    try {
      await api('DELETE', `/api-keys/${encodeURIComponent(k.id)}`);
      announce(`Key ${k.name} revoked.`);
      await redraw();
    } catch (err) {
      showError(errors, err);
      button.disabled = false;
    }
  };
  const columns = [
    { label: 'Name', cell: (k) => h('span', {}, k.name, me?.key_id === k.id ? h('span', { class: 'muted' }, ' (this key)') : null) },
    { label: 'Role', cell: (k) => k.role },
    { label: 'Key', cell: (k) => h('code', {}, `${k.prefix}…`) },
    { label: 'Created', cell: (k) => fmtTime(k.created_at) },
    { label: 'Last used', cell: (k) => (k.last_used_at ? fmtTime(k.last_used_at) : 'never') },
    // One element per cell: narrow screens lay cells out as a grid of label + content.
    { label: 'Status', cell: (k) => h('span', {}, k.revoked_at ? [badge('revoked'), h('span', { class: 'muted' }, ` ${fmtTime(k.revoked_at)}`)] : badge('active')) },
    {
      label: 'Actions',
      cell: (k) => (k.revoked_at ? '—' : h('div', { class: 'row-actions' }, h('button', {
        type: 'button', class: 'small danger', 'data-needs': 'administer', 'aria-label': `Revoke ${k.name}`,
        onclick: (ev) => revoke(ev.currentTarget, k),
      }, 'Revoke'))),
    },
  ];
  const list = h('div', { id: 'keys-list' });
  const draw = (rows) => list.replaceChildren(table({ caption: `${rows.length} key${rows.length === 1 ? '' : 's'}`, columns, rows, empty: 'No keys yet: the bootstrap ADMIN_API_KEY is the only one.' }));
  const redraw = async () => draw((await api('GET', '/api-keys?limit=100')).data);
  draw(first.data);
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader('API keys'),
    h('p', { class: 'muted' }, 'Keys of this tenant. A key is shown once, when it is created; revoking one refuses it at once.'),
    errors, notice, form, list);
}
