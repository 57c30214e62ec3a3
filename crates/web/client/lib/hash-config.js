// @ts-check
/**
 * URL hash overrides, as Jitsi Meet reads them:
 * `#config.prejoinConfig.enabled=false&userInfo.displayName="Alice"`.
 * Each value is JSON (URL-encoded); a value that is not valid JSON is taken as a string.
 * `config.` keys apply only when Jitsi Meet's whitelist lets a page override them (the
 * keys below that Convene reads); `userInfo.` keys always; prototype keys never. The iframe
 * API adds `jitsi_meet_external_api_id=<N>` and `jwt="<token>"`.
 */

const FORBIDDEN_KEYS = new Set(['__proto__', 'prototype', 'constructor']);
/** The iframe API puts the whole `configOverwrite` (e.g. a `toolbarButtons` list) in the hash. */
const MAX_HASH = 16384;

/**
 * The config keys a URL may override: those of Jitsi Meet's `configWhitelist.ts` that
 * Convene reads. An entry allows everything under it (`videoQuality`), a dotted entry only
 * that sub-key (`prejoinConfig.enabled`). Server-side keys (`hosts`, `websocket`, …) are
 * never in it.
 */
export const CONFIG_WHITELIST = [
  'channelLastN',
  'disableSimulcast',
  'p2p.enabled',
  'prejoinConfig.enabled',
  'prejoinPageEnabled',
  'readOnlyName',
  'resolution',
  'startWithAudioMuted',
  'startWithVideoMuted',
  'subject',
  'toolbarButtons',
  'videoQuality',
];

/**
 * @typedef {object} HashOverrides
 * @property {Record<string, unknown>} config
 * @property {Record<string, unknown>} userInfo
 * @property {string} [jwt] the token the iframe API puts in the hash
 * @property {number} [apiId] the iframe API's `jitsi_meet_external_api_id`: the page is embedded
 */

/**
 * @param {string} hash `location.hash`, with or without the leading `#`
 * @returns {HashOverrides}
 */
export function parseHashConfig(hash) {
  /** @type {HashOverrides} */
  const out = { config: {}, userInfo: {} };
  const text = hash.replace(/^#/, '').slice(0, MAX_HASH);
  for (const pair of text.split('&')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    let key;
    let raw;
    try {
      key = decodeURIComponent(pair.slice(0, eq));
      raw = decodeURIComponent(pair.slice(eq + 1));
    } catch {
      continue;
    }
    if (key === 'jwt' || key === 'jitsi_meet_external_api_id') {
      const value = parseValue(raw);
      if (key === 'jwt' && typeof value === 'string') out.jwt = value;
      if (key === 'jitsi_meet_external_api_id' && Number.isSafeInteger(value)) out.apiId = /** @type {number} */ (value);
      continue;
    }
    const path = key.split('.');
    const root = path.shift();
    if ((root !== 'config' && root !== 'userInfo') || path.length === 0) continue;
    if (path.some((p) => p === '' || FORBIDDEN_KEYS.has(p))) continue;
    setPath(out[root], path, parseValue(raw));
  }
  out.config = whitelisted(out.config);
  return out;
}

/**
 * The parts of `overrides` that the whitelist allows.
 * @param {Record<string, unknown>} overrides @returns {Record<string, unknown>}
 */
function whitelisted(overrides) {
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const entry of CONFIG_WHITELIST) {
    const path = entry.split('.');
    /** @type {unknown} */
    let value = overrides;
    for (const part of path) value = isPlainObject(value) ? /** @type {Record<string, unknown>} */ (value)[part] : undefined;
    if (value !== undefined) setPath(out, path, value);
  }
  return out;
}

/** @param {string} raw @returns {unknown} */
function parseValue(raw) {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/**
 * @param {Record<string, unknown>} target @param {string[]} path @param {unknown} value
 */
function setPath(target, path, value) {
  let node = target;
  for (const part of path.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {};
    node = /** @type {Record<string, unknown>} */ (node[part]);
  }
  node[/** @type {string} */ (path[path.length - 1])] = value;
}

/**
 * Deep-merges `overrides` into a copy of `base` (objects merge, everything else replaces).
 * @template {Record<string, unknown>} T
 * @param {T} base @param {Record<string, unknown>} overrides
 * @returns {T}
 */
export function mergeConfig(base, overrides) {
  /** @type {Record<string, unknown>} */
  const out = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    if (FORBIDDEN_KEYS.has(key)) continue;
    const current = out[key];
    if (isPlainObject(value) && isPlainObject(current)) {
      out[key] = mergeConfig(/** @type {Record<string, unknown>} */ (current), /** @type {Record<string, unknown>} */ (value));
    } else {
      out[key] = value;
    }
  }
  return /** @type {T} */ (out);
}

/** @param {unknown} v @returns {boolean} */
function isPlainObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
