// Text messages of the tenant: the list (sent and received), a form to send one (operators and
// admins), and the suppression list (numbers that opted out, or that an operator blocked) with
// add and remove. Routes: /api/v1/messages, /api/v1/suppressions (src/routes.rs).
import { api } from '../api.js';
import { h, table, badge, fmtTime, field, pageHeader, errorBox, showError, announce, submitForm } from '../dom.js';

const MAX_BODY = 1600;

export async function messagesPage() {
  const [firstMessages, firstSuppressions] = await Promise.all([
    api('GET', '/messages?limit=100'),
    api('GET', '/suppressions?limit=100'),
  ]);
  const errors = errorBox();

  const to = h('input', { name: 'to', type: 'tel', required: true, placeholder: '+14155550100', autocomplete: 'off', pattern: '\\+[1-9][0-9]{1,14}' });
  const from = h('input', { name: 'from', type: 'tel', placeholder: 'your first number', autocomplete: 'off', pattern: '\\+[1-9][0-9]{1,14}' });
  const body = h('textarea', { name: 'body', required: true, rows: 3, maxlength: MAX_BODY });
  const sendErrors = errorBox();
  const sendForm = h('form', {
    class: 'card', 'aria-labelledby': 'send-title', novalidate: true, 'data-needs': 'operate',
    onsubmit: submitForm(sendErrors, async () => {
      const message = { to: to.value.trim(), body: body.value };
      if (from.value.trim()) message.from = from.value.trim();
      const queued = await api('POST', '/messages', message);
      sendForm.reset();
      announce(`Message to ${queued.to} queued.`);
      await redrawMessages();
    }),
  },
  h('h3', { id: 'send-title' }, 'Send a message'),
  h('div', { class: 'row' }, field('To', to, 'E.164, e.g. +14155550100'), field('From', from, 'One of your numbers (optional)')),
  field('Text', body, `At most ${MAX_BODY} characters. Numbers that opted out are refused.`),
  sendErrors,
  h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Send')));

  const messageColumns = [
    { label: 'When', cell: (m) => fmtTime(m.created_at) },
    { label: 'Direction', cell: (m) => m.direction },
    { label: 'From', cell: (m) => h('code', {}, m.from) },
    { label: 'To', cell: (m) => h('code', {}, m.to) },
    { label: 'Text', cell: (m) => h('span', { class: 'message-text' }, m.body) },
    { label: 'Status', cell: (m) => h('span', { title: m.last_error ?? '' }, badge(m.status)) },
  ];
  const messageList = h('div', { id: 'messages-list' });
  const drawMessages = (rows) => messageList.replaceChildren(table({
    caption: `${rows.length} message${rows.length === 1 ? '' : 's'}`, columns: messageColumns, rows, empty: 'No messages yet.',
  }));
  const redrawMessages = async () => drawMessages((await api('GET', '/messages?limit=100')).data);

  const phone = h('input', { name: 'phone', type: 'tel', required: true, placeholder: '+14155550100', autocomplete: 'off', pattern: '\\+[1-9][0-9]{1,14}' });
  const addErrors = errorBox();
  const addForm = h('form', {
    class: 'card', 'aria-labelledby': 'suppress-title', novalidate: true, 'data-needs': 'operate',
    onsubmit: submitForm(addErrors, async () => {
      const added = await api('POST', '/suppressions', { phone: phone.value.trim() });
      addForm.reset();
      announce(`${added.phone} suppressed.`);
      await redrawSuppressions();
    }),
  },
  h('h3', { id: 'suppress-title' }, 'Suppress a number'),
  h('div', { class: 'row' }, field('Phone', phone, 'No messages and no campaign calls go to it')),
  addErrors,
  h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Suppress')));

  const lift = async (button, s) => {
    if (!confirm(`Allow messages and calls to ${s.phone} again?`)) return;
    button.disabled = true;
    try {
      await api('DELETE', `/suppressions/${encodeURIComponent(s.phone)}`);
      announce(`${s.phone} removed from the suppression list.`);
      await redrawSuppressions();
    } catch (err) {
      showError(errors, err);
      button.disabled = false;
    }
  };
  const suppressionColumns = [
    { label: 'Phone', cell: (s) => h('code', {}, s.phone) },
    { label: 'Source', cell: (s) => (s.source === 'keyword' ? 'texted STOP' : 'operator') },
    { label: 'Since', cell: (s) => fmtTime(s.created_at) },
    {
      label: 'Actions',
      cell: (s) => h('div', { class: 'row-actions' }, h('button', {
        type: 'button', class: 'small danger', 'data-needs': 'operate', 'aria-label': `Remove ${s.phone}`,
        onclick: (ev) => lift(ev.currentTarget, s),
      }, 'Remove')),
    },
  ];
  const suppressionList = h('div', { id: 'suppressions-list' });
  const drawSuppressions = (rows) => suppressionList.replaceChildren(table({
    caption: `${rows.length} suppressed number${rows.length === 1 ? '' : 's'}`, columns: suppressionColumns, rows, empty: 'No suppressed numbers.',
  }));
  const redrawSuppressions = async () => drawSuppressions((await api('GET', '/suppressions?limit=100')).data);

  drawMessages(firstMessages.data);
  drawSuppressions(firstSuppressions.data);
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader('Messages'),
    h('p', { class: 'muted' }, 'Text messages sent and received through your numbers. A number that texts STOP is suppressed; START lifts it.'),
    errors, sendForm, messageList,
    h('h2', {}, 'Suppression list'),
    addForm, suppressionList);
}
