// @ts-check
/** The client configuration: the server's `config.js` with the URL hash overrides applied. */

import { mergeConfig, parseHashConfig } from '../lib/hash-config.js';

/**
 * @typedef {object} ClientConfig
 * @property {{ domain: string, muc: string, focus?: string }} hosts
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
 * @property {boolean} [prejoinPageEnabled] the older name of `prejoinConfig.enabled`, still sent by integrations
 * @property {string} [subject] the room subject to set once joined (as moderator)
 * @property {string[]} [toolbarButtons] Jitsi Meet's toolbar button keys to show
 * @property {boolean} [readOnlyName] the name cannot be changed on the page
 * @property {string} [token] the Jitsi token of the page's hash `jwt=` or `?jwt=`, passed on to the server
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
  return {
    config,
    userInfo: { displayName: text(overrides.userInfo.displayName), email: text(overrides.userInfo.email) },
    apiId: overrides.apiId,
  };
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
