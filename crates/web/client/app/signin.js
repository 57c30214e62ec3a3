// @ts-check
/**
 * The sign-in screen of a secure domain (the main domain is for signed-in users, guests
 * sign in at `hosts.anonymousdomain` and wait for a host), and the plain-words text of
 * every sign-in refusal.
 */

import { byId } from './dom.js';

/** @typedef {import('./settings.js').ClientConfig} ClientConfig */

/** Whether this page must ask how to sign in first: a secure domain and no token yet. @param {ClientConfig} config */
export function needsSignIn(config) {
  return !!config.hosts.anonymousdomain && !config.token;
}

/** Where the OIDC sign-in for `room` starts (the server's `tokenAuthUrl`). @param {ClientConfig} config @param {string} room */
export function oidcUrl(config, room) {
  return config.tokenAuthUrl?.replace('{room}', encodeURIComponent(room.toLowerCase()));
}

/**
 * Shows the sign-in screen; resolves once the person chose: the OIDC button leaves the
 * page, a user name and password set `config.credentials`, "join as a guest" sets
 * `config.guest`.
 * @param {ClientConfig} config @param {string} room @returns {Promise<void>}
 */
export function showSignIn(config, room) {
  const section = byId('signin');
  section.hidden = false;
  const oidc = oidcUrl(config, room);
  const button = /** @type {HTMLAnchorElement} */ (byId('signin-oidc'));
  button.hidden = !oidc || !config.signIn?.oidc;
  if (oidc) {
    button.href = oidc;
    button.textContent = config.signIn?.oidc ?? 'Sign in';
  }
  const form = /** @type {HTMLFormElement} */ (byId('signin-form'));
  form.hidden = !config.signIn?.password;
  (button.hidden ? byId('signin-user') : button).focus();
  return new Promise((resolve) => {
    form.onsubmit = (ev) => {
      ev.preventDefault();
      const user = /** @type {HTMLInputElement} */ (byId('signin-user')).value.trim();
      const password = /** @type {HTMLInputElement} */ (byId('signin-password')).value;
      if (!user || !password) return;
      config.credentials = { user, password };
      section.hidden = true;
      resolve();
    };
    byId('signin-guest').onclick = () => {
      config.guest = true;
      section.hidden = true;
      resolve();
    };
  });
}

/**
 * Why a sign-in or a join was refused, in plain words, and whether signing in again helps.
 * @param {ClientConfig} config @param {Error & { condition?: string }} err
 * @returns {{ title: string, text: string, signInAgain: boolean }}
 */
export function refusal(config, err) {
  const detail = err.message;
  if (err.condition === 'room-mismatch') {
    return { title: 'Wrong meeting', text: 'Your sign-in is for another meeting, not this one. Sign in again from this meeting’s page.', signInAgain: true };
  }
  if (config.credentials) {
    const text = err.condition === 'not-authorized' ? 'Wrong user name or password.' : `The server refused the sign-in (${detail}).`;
    return { title: 'Sign-in failed', text, signInAgain: true };
  }
  if (detail.startsWith('Not acceptable by exp')) {
    return { title: 'Sign-in expired', text: 'Your sign-in has expired. Please sign in again.', signInAgain: true };
  }
  if (detail === 'token required') {
    return { title: 'Sign-in required', text: 'This meeting is only for people who signed in.', signInAgain: true };
  }
  if (config.token) {
    return { title: 'Sign-in failed', text: `Your sign-in is not valid (${detail}). Please sign in again.`, signInAgain: true };
  }
  return { title: 'Authentication failed', text: `Sorry, you're not allowed to join this call (${detail}).`, signInAgain: false };
}
