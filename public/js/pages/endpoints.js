import { api } from '../api.js';
import { h, table, badge, fmtTime, field, pageHeader, errorBox, showError, announce, copyButton, submitForm } from '../dom.js';

/** How long the page follows a test delivery before leaving it to the deliveries page. */
const TEST_FOLLOW_MS = 30_000;

/** Shows a secret with a copy button; `once` says it will not be shown again. */
function secretNotice(box, title, secret, { once = true } = {}) {
  const code = h('code', { class: 'secret' }, secret);
  box.replaceChildren(h('div', { class: 'card success', tabindex: '-1', id: 'secret-notice' },
    h('h3', {}, title),
    h('p', {}, once
      ? 'Signing secret (shown once; store it where your endpoint verifies webhooks):'
      : 'Signing secret (admin keys only; every view is recorded in the audit log):'),
    h('p', { class: 'secret-line' }, code, copyButton(secret, { what: 'secret', selectTarget: code }))));
  box.firstChild.focus();
}

/** "call.*, email.delivered" → ['call.*', 'email.delivered'], or null (every event) when empty. */
function parseTypes(text) {
  const list = text.split(',').map((t) => t.trim()).filter(Boolean);
  return list.length ? list : null;
}

/** What a delivery's state means for a test event: [badge status, sentence]. */
function testOutcome(d) {
  const code = d.last_status_code ? `HTTP ${d.last_status_code}` : null;
  const reason = code ?? d.last_error ?? 'no response';
  if (d.status === 'succeeded') return ['delivered', `Delivered (${code ?? 'accepted'}).`];
  if (d.status === 'pending' && d.attempts === 0) return ['pending', 'Sending…'];
  if (d.status === 'pending') return ['failed', `Failed: ${reason}; retrying${d.next_attempt_at ? ` at ${fmtTime(d.next_attempt_at)}` : ''}.`];
  return ['failed', `Failed: ${reason} (${d.status.replaceAll('_', ' ')}).`];
}

export async function endpointsPage(ctx) {
  const page = await api('GET', '/endpoints?limit=100');
  const notice = h('div', { 'aria-live': 'polite' });
  const testResult = h('div', { id: 'test-result', 'aria-live': 'polite' });
  const editBox = h('div');
  const errors = errorBox();
  let following = null;
  ctx.onTeardown(() => clearTimeout(following));

  const url = h('input', { name: 'url', type: 'url', required: true, placeholder: 'https://example.com/webhooks', autocomplete: 'off' });
  const types = h('input', { name: 'event_types', type: 'text', placeholder: 'call.*, email.delivered', autocomplete: 'off' });
  const description = h('input', { name: 'description', type: 'text', autocomplete: 'off' });
  const createErrors = errorBox();
  const form = h('form', {
    class: 'card', 'aria-labelledby': 'new-endpoint-title', novalidate: true, 'data-needs': 'administer',
    onsubmit: submitForm(createErrors, async () => {
      const body = { url: url.value.trim(), event_types: parseTypes(types.value) };
      if (description.value.trim()) body.description = description.value.trim();
      const created = await api('POST', '/endpoints', body);
      form.reset();
      announce(`Endpoint ${created.id} created.`);
      await redraw();
      secretNotice(notice, `Endpoint ${created.id} created`, created.secret);
    }),
  },
  h('h3', { id: 'new-endpoint-title' }, 'Add an endpoint'),
  field('URL', url),
  field('Event types', types, 'Comma-separated: exact types, prefix.* or *; empty for every event'),
  field('Description', description),
  createErrors,
  h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Add endpoint')));

  /** The edit form for endpoint `e`, above the list; PATCH sends only what changed. */
  const openEditor = (e) => {
    const editUrl = h('input', { name: 'url', id: 'edit-url', type: 'url', required: true, value: e.url, autocomplete: 'off' });
    const editTypes = h('input', { name: 'event_types', id: 'edit-event-types', type: 'text', value: (e.event_types ?? []).join(', '), autocomplete: 'off' });
    const editDescription = h('input', { name: 'description', id: 'edit-description', type: 'text', value: e.description ?? '', autocomplete: 'off' });
    const editErrors = errorBox();
    const close = () => editBox.replaceChildren();
    const editForm = h('form', {
      class: 'card', id: 'endpoint-edit', 'aria-labelledby': 'edit-endpoint-title', novalidate: true, 'data-needs': 'administer',
      onsubmit: async (ev) => {
        ev.preventDefault();
        showError(editErrors, null, editForm);
        if (!editForm.reportValidity()) return;
        const patch = {};
        const nextUrl = editUrl.value.trim();
        const nextTypes = parseTypes(editTypes.value);
        const nextDescription = editDescription.value.trim() || null;
        if (nextUrl !== e.url) patch.url = nextUrl;
        if (JSON.stringify(nextTypes) !== JSON.stringify(e.event_types ?? null)) patch.event_types = nextTypes;
        if (nextDescription !== (e.description ?? null)) patch.description = nextDescription;
        const button = editForm.querySelector('button[type=submit]');
        button.disabled = true;
        try {
          if (Object.keys(patch).length) await api('PATCH', `/endpoints/${encodeURIComponent(e.id)}`, patch);
          close();
          announce(Object.keys(patch).length ? `Endpoint ${nextUrl} saved.` : 'Nothing changed.');
          await redraw();
        } catch (err) {
          showError(editErrors, err, editForm);
        } finally {
          button.disabled = false;
        }
      },
    },
    h('h3', { id: 'edit-endpoint-title' }, `Edit endpoint ${e.id}`),
    field('URL', editUrl),
    field('Event types', editTypes, 'Comma-separated: exact types, prefix.* or *; empty for every event'),
    field('Description', editDescription, 'Empty clears it'),
    editErrors,
    h('div', { class: 'buttons' },
      h('button', { type: 'submit' }, 'Save changes'),
      h('button', { type: 'button', class: 'secondary', onclick: close }, 'Cancel')));
    editForm.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') close();
    });
    editBox.replaceChildren(editForm);
    editForm.scrollIntoView({ block: 'nearest' });
    editUrl.focus();
  };

  /** Sends endpoint `e` a test event, then follows its delivery until it is decided. */
  const sendTest = async (e) => {
    clearTimeout(following);
    testResult.replaceChildren();
    const sent = await api('POST', `/endpoints/${encodeURIComponent(e.id)}/test`);
    const link = h('a', { href: `#/deliveries/${encodeURIComponent(sent.delivery_id)}` }, sent.delivery_id);
    const state = h('span', { id: 'test-state' });
    const text = h('span', { id: 'test-text' });
    testResult.replaceChildren(h('div', { class: 'card test-result', id: 'test-card' },
      h('h3', {}, `Test event to ${e.url}`),
      h('p', {}, state, ' ', text),
      h('p', { class: 'muted' }, 'Delivery ', link, ' · event ', h('code', {}, sent.event_id))));
    const until = Date.now() + TEST_FOLLOW_MS;
    const poll = async () => {
      if (!ctx.isCurrent()) return;
      let d;
      try {
        d = await api('GET', `/deliveries/${encodeURIComponent(sent.delivery_id)}`);
      } catch (err) {
        showError(errors, err);
        return;
      }
      if (!ctx.isCurrent()) return;
      const [status, sentence] = testOutcome(d);
      state.replaceChildren(badge(status));
      text.textContent = sentence;
      if (status === 'pending' && Date.now() < until) following = setTimeout(poll, 700);
      else announce(`Test event to ${e.url}: ${sentence}`);
    };
    await poll();
  };

  const act = async (button, fn) => {
    button.disabled = true;
    showError(errors, null);
    try {
      await fn();
    } catch (err) {
      showError(errors, err);
    } finally {
      button.disabled = false;
    }
  };
  const action = (label, e, fn, cls = 'secondary') => h('button', {
    type: 'button', class: `small ${cls}`, 'aria-label': `${label} ${e.url}`, 'data-needs': 'administer',
    onclick: (ev) => act(ev.currentTarget, fn),
  }, label);
  const columns = [
    { label: 'URL', cell: (e) => h('span', { class: 'url' }, e.url) },
    { label: 'Status', cell: (e) => [badge(e.status), e.disabled_reason ? h('span', { class: 'muted' }, ` ${e.disabled_reason}`) : null] },
    { label: 'Event types', cell: (e) => (e.event_types ? e.event_types.join(', ') : 'every event') },
    { label: 'Description', cell: (e) => e.description ?? '—' },
    { label: 'Created', cell: (e) => fmtTime(e.created_at) },
    {
      label: 'Actions',
      cell: (e) => h('div', { class: 'row-actions' },
        action('Edit', e, async () => openEditor(e)),
        action('Send test event', e, () => sendTest(e)),
        action(e.status === 'enabled' ? 'Pause' : 'Resume', e, async () => {
          const next = e.status === 'enabled' ? 'paused' : 'enabled';
          await api('PATCH', `/endpoints/${encodeURIComponent(e.id)}`, { status: next });
          announce(`Endpoint ${e.url} ${next === 'paused' ? 'paused' : 'resumed'}.`);
          await redraw();
        }),
        action('Show secret', e, async () => {
          const revealed = await api('GET', `/endpoints/${encodeURIComponent(e.id)}/secret`);
          secretNotice(notice, `Secret of ${e.url}`, revealed.secret, { once: false });
        }),
        action('Rotate secret', e, async () => {
          if (!confirm('Rotate the signing secret? The old one keeps signing for 24 hours.')) return;
          const rotated = await api('POST', `/endpoints/${encodeURIComponent(e.id)}/rotate-secret`, {});
          announce('Secret rotated.');
          await redraw();
          secretNotice(notice, `New secret for ${e.url}`, rotated.secret);
        }),
        action('Delete', e, async () => {
          if (!confirm(`Delete ${e.url}? Pending deliveries to it are canceled.`)) return;
          await api('DELETE', `/endpoints/${encodeURIComponent(e.id)}`);
          announce('Endpoint deleted.');
          await redraw();
        }, 'danger')),
    },
  ];
  const list = h('div', { id: 'endpoints-list' });
  const draw = (rows) => list.replaceChildren(table({ caption: `${rows.length} endpoint${rows.length === 1 ? '' : 's'}`, columns, rows, empty: 'No endpoints yet.' }));
  const redraw = async () => draw((await api('GET', '/endpoints?limit=100')).data);
  draw(page.data);
  return h('section', { 'aria-labelledby': 'page-title' }, pageHeader('Endpoints'), errors, notice, testResult, editBox, list, form);
}
