// @ts-check
/** The client configuration: the server's `config.js` with the URL hash overrides applied. */

import { mergeConfig, parseHashConfig } from '../lib/hash-config.js';

/**
 * @typedef {object} ClientConfig
 * @property {{ domain: string, muc: string, focus?: string, anonymousdomain?: string }} hosts
 *   `anonymousdomain`: a secure domain's guests sign in there
 * @property {string} websocket
 * @property {string} [focusUserJid]
 * @property {{ enabled?: boolean }} [p2p]
 * @property {boolean} [disableSimulcast]
 * @property {{ codecPreferenceOrder?: string[] }} [videoQuality] the camera's codec order, e.g. `["AV1", "VP8"]`
 * @property {number} [resolution]
 * @property {{ enabled?: boolean }} [prejoinConfig]
 * @property {string} [appName]
 * @property {boolean} [startWithAudioMuted]
 * @property {boolean} [startWithVideoMuted]
 * @property {string} [token] the Jitsi token of the page's hash `jwt=` or `?jwt=`, passed on to the server
 * @property {string} [tokenAuthUrl] where the OIDC sign-in starts (`{room}` is the room)
 * @property {{ password?: boolean, oidc?: string | null }} [signIn] what the sign-in screen
 *   offers: user name and password, and the OIDC button's label
 * @property {{ user: string, password: string }} [credentials] chosen on the sign-in screen
 * @property {boolean} [guest] join as a guest of a secure domain (chosen on the sign-in screen)
 * @property {boolean} [prejoinPageEnabled] the older name of `prejoinConfig.enabled`, still sent by integrations
 * @property {string} [subject] the room subject to set once joined (as moderator)
 * @property {string[]} [toolbarButtons] Jitsi Meet's toolbar button keys to show
 * @property {boolean} [readOnlyName] the name cannot be changed on the page
 */

/**
 * @typedef {object} Settings
 * @property {ClientConfig} config
 * @property {{ displayName?: string, email?: string }} userInfo
 * @property {number} [apiId] set when the page is embedded with the iframe API
 */

/** @returns {Settings} */
export function loadSettings() {
  const overrides = parseHashConfig(location.hash);
  const config = mergeConfig(/** @type {ClientConfig & Record<string, unknown>} */ (globalThis.config), overrides.config);
  if (config.prejoinPageEnabled === false) config.prejoinConfig = { ...config.prejoinConfig, enabled: false };
  const text = (/** @type {unknown} */ v) => (typeof v === 'string' ? v : undefined);
  const token = overrides.jwt ?? new URLSearchParams(location.search).get('jwt');
  if (token) config.token = token;
  // As Jitsi Meet does: a signed-in user is called what the token says, unless the
  // address says otherwise.
  const name = text(overrides.userInfo.displayName) ?? (token ? tokenUserName(token) : undefined);
  return {
    config,
    userInfo: { displayName: name, email: text(overrides.userInfo.email) },
    apiId: overrides.apiId,
  };
}

/** `context.user.name` of a Jitsi token (read, not verified: the server verifies it). @param {string} token */
function tokenUserName(token) {
  try {
    const bytes = Uint8Array.from(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    const name = payload?.context?.user?.name;
    return typeof name === 'string' ? name.slice(0, 64) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The page's saved preferences (`localStorage`). An embedded page on another site than its
 * host may be denied storage (third-party storage blocking): then they last for the page.
 */
export const saved = {
  /** @type {Map<string, string>} */
  memory: new Map(),
  /** @param {string} key @returns {string | undefined} */
  get(key) {
    try {
      return localStorage.getItem(key) ?? undefined;
    } catch {
      return this.memory.get(key);
    }
  },
  /** @param {string} key @param {string} value */
  set(key, value) {
    try {
      localStorage.setItem(key, value);
    } catch {
      this.memory.set(key, value);
    }
  },
};

/** Room names as the server accepts them in a URL (the MUC node part). */
export const ROOM_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** @param {string} input free text typed by a person @returns {string} a valid room name or '' */
export function roomNameFromInput(input) {
  const name = input.trim().replace(/\s+/g, '-').replace(/[^A-Za-z0-9_-]/g, '');
  return ROOM_NAME.test(name) ? name : '';
}
