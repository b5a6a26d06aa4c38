import { api, session } from '../api.js';
import { h, field, errorBox, showError, announce } from '../dom.js';

export function loginPage({ onLogin }) {
  const input = h('input', { name: 'key', type: 'password', autocomplete: 'off', required: true, spellcheck: false });
  const errors = errorBox();
  const submit = h('button', { type: 'submit' }, 'Log in');
  const form = h('form', {
    class: 'card narrow',
    'aria-labelledby': 'page-title',
    onsubmit: async (e) => {
      e.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      submit.disabled = true;
      showError(errors, null, form);
      try {
        // Any read proves the key: the smallest list there is.
        await api('GET', '/agents?limit=1', undefined, { key });
        session.key = key;
        announce('Logged in.');
        if (!location.hash || location.hash === '#/' || location.hash === '#') location.hash = '#/calls';
        onLogin();
      } catch (err) {
        showError(errors, err.status === 401 ? Object.assign(err, { message: `That API key was refused: ${err.message}` }) : err, form);
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('h2', { id: 'page-title', tabindex: '-1' }, 'Log in'),
  h('p', {}, 'Use an API key of your tenant (or the ADMIN_API_KEY). It is kept in this tab’s session storage only.'),
  field('API key', input),
  errors,
  submit);
  queueMicrotask(() => input.focus());
  return form;
}
