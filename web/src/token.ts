import { setToken } from './api.js';
import { alertBox, h } from './dom.js';

/** Asks for the API token once per browser session; it goes to sessionStorage, never into a URL. */
export function tokenView(main: HTMLElement, done: () => void, message?: string): () => void {
  const input = h('input', {
    id: 'token',
    type: 'password',
    name: 'token',
    autocomplete: 'off',
    required: true,
    spellcheck: 'false',
  });
  const form = h(
    'form',
    { className: 'card narrow', 'aria-labelledby': 'token-title' },
    h('h1', { id: 'token-title' }, 'API token'),
    h(
      'p',
      {},
      'Enter an API token (',
      h('code', {}, 'HODEI_API_TOKENS'),
      ', or ',
      h('code', {}, 'data/api-token'),
      '). It is kept only for this browser tab.',
    ),
    message ? alertBox(message) : null,
    h('label', { for: 'token' }, 'Token'),
    input,
    h('div', { className: 'actions' }, h('button', { type: 'submit', className: 'primary' }, 'Continue')),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    setToken(token);
    done();
  });
  main.replaceChildren(form);
  input.focus();
  return () => undefined;
}
