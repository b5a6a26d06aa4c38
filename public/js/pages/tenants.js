// Tenants (bootstrap ADMIN_API_KEY only): list and create; a new tenant's first admin key is
// shown once.
import { api, qs } from '../api.js';
import { h, fmtTime, field, pageHeader, errorBox, announce, secretOnce, submitForm, pagedTable } from '../dom.js';

export async function tenantsPage() {
  const first = await api('GET', '/tenants?limit=50');
  const notice = h('div', { id: 'tenant-notice' });
  const errors = errorBox();

  const name = h('input', { name: 'name', type: 'text', required: true, maxlength: 100, autocomplete: 'off' });
  const createErrors = errorBox();
  const form = h('form', {
    class: 'card', 'aria-labelledby': 'new-tenant-title', novalidate: true, 'data-needs': 'bootstrap',
    onsubmit: submitForm(createErrors, async () => {
      notice.replaceChildren();
      const created = await api('POST', '/tenants', { name: name.value.trim() });
      form.reset();
      announce(`Tenant ${created.name} created.`);
      await reload();
      notice.replaceChildren(secretOnce({
        title: `Tenant “${created.name}” created`,
        label: `Admin key of ${created.name}`,
        secret: created.api_key.key,
        note: 'The tenant’s first admin key, shown only now: hand it to the tenant’s administrator, who creates their other keys with it.',
      }));
    }),
  },
  h('h3', { id: 'new-tenant-title' }, 'Create a tenant'),
  field('Name', name),
  createErrors,
  h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Create tenant')));

  const columns = [
    { label: 'Name', cell: (t) => t.name },
    { label: 'Id', cell: (t) => h('code', {}, t.id) },
    { label: 'Created', cell: (t) => fmtTime(t.created_at) },
  ];
  const { list, reload } = pagedTable({
    id: 'tenants-list', first, columns, errors, empty: 'No tenants yet.',
    more: (cursor) => api('GET', `/tenants${qs({ limit: 50, cursor })}`),
    caption: (rows, more) => `${rows.length} tenant${rows.length === 1 ? '' : 's'}${more ? ' (more below)' : ''}`,
  });
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader('Tenants'),
    h('p', { class: 'muted' }, 'Every tenant of this deployment. Only the bootstrap ADMIN_API_KEY sees this page.'),
    errors, notice, form, list);
}
