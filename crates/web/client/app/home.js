// @ts-check
/** The home page: type a meeting name (or take the suggested one) and go to its page. */

import { roomNameFromInput } from './settings.js';
import { byId } from './dom.js';

const form = /** @type {HTMLFormElement} */ (byId('room-form'));
const input = /** @type {HTMLInputElement} */ (byId('room-name'));
const error = byId('room-error');
byId('app-name').textContent = globalThis.config?.appName ?? 'Convene';

const words = ['amber', 'brisk', 'cedar', 'delta', 'ember', 'fjord', 'harbor', 'lumen', 'maple', 'orbit', 'pine', 'quartz'];
const pick = () => words[Math.floor(Math.random() * words.length)];
input.value = `${pick()}-${pick()}-${Math.floor(100 + Math.random() * 900)}`;
input.select();

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const room = roomNameFromInput(input.value);
  if (!room) {
    error.textContent = 'Use letters, digits, "-" or "_" (at most 64).';
    error.hidden = false;
    return;
  }
  location.assign(`/${encodeURIComponent(room)}`);
});
