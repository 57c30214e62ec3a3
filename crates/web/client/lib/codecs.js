// @ts-check
/**
 * Video codec choice, as lib-jitsi-meet's `CodecSelection` makes it (pure; unit-tested):
 *  - our preference order comes from `config.videoQuality.codecPreferenceOrder`, limited to
 *    what the browser can encode and decode, and is published in presence
 *    (`<jitsi_participant_codecList>`);
 *  - we send the first codec of ours that every other participant lists (one that lists
 *    nothing does not count), and switch when someone joins or leaves;
 *  - VP8 (and H.264) go out as three simulcast encodings; VP9 and AV1 as SVC in one stream
 *    (`L3T3_KEY` from 720p up, `L2T3_KEY` from 360p, else `L1T3`), one SSRC when the session
 *    starts on them, as lib-jitsi-meet sends them; the bridge then picks spatial and temporal
 *    layers for each receiver out of that stream. A later switch keeps the encodings the
 *    session negotiated (SVC in the first of three, the others inactive; or VP8 in one).
 */

/** The codec names of Jitsi's codec lists, in Jitsi's desktop default order. */
export const VIDEO_CODECS = ['av1', 'vp9', 'vp8', 'h264'];
const SVC_CODECS = new Set(['av1', 'vp9']);
const MAX_LIST = 8;

/**
 * Our preference order: `configured` (case-insensitive names) limited to `supported`; VP8
 * when nothing is left, since every Jitsi client decodes it.
 * @param {unknown} configured `config.videoQuality.codecPreferenceOrder`
 * @param {string[]} supported lower-case codec names the browser handles
 * @returns {string[]}
 */
export function preferenceOrder(configured, supported) {
  const wanted = Array.isArray(configured) ? configured.slice(0, MAX_LIST) : VIDEO_CODECS;
  /** @type {string[]} */
  const order = [];
  for (const name of wanted) {
    const codec = typeof name === 'string' ? name.toLowerCase() : '';
    if (VIDEO_CODECS.includes(codec) && supported.includes(codec) && !order.includes(codec)) order.push(codec);
  }
  return order.length > 0 ? order : ['vp8'];
}

/**
 * A participant's codec list from its presence text (`av1,vp9,vp8`): known names only.
 * @param {string | undefined} text
 * @returns {string[]}
 */
export function parseCodecList(text) {
  if (!text || text.length > 256) return [];
  return text
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c, i, all) => VIDEO_CODECS.includes(c) && all.indexOf(c) === i);
}

/**
 * The codec to send: the first of `own` that every list in `others` contains (empty lists
 * are ignored); our first choice when none is shared.
 * @param {string[]} own
 * @param {string[][]} others
 * @returns {string}
 */
export function sendCodec(own, others) {
  const lists = others.filter((l) => l.length > 0);
  return own.find((codec) => lists.every((l) => l.includes(codec))) ?? own[0] ?? 'vp8';
}

/** @param {string} codec */
export function isSvc(codec) {
  return SVC_CODECS.has(codec);
}

/**
 * The SVC mode lib-jitsi-meet picks for a camera of `height` pixels.
 * @param {number} height
 */
export function scalabilityMode(height) {
  if (height >= 720) return 'L3T3_KEY';
  if (height >= 360) return 'L2T3_KEY';
  return 'L1T3';
}

/**
 * The camera sender's encodings for `codec`, over the `count` encodings the session
 * negotiated (3 with simulcast, lowest resolution first; else 1).
 * @param {string} codec
 * @param {number} count
 * @param {number} height the camera's capture height
 * @returns {{ active: boolean, scaleResolutionDownBy?: number, scalabilityMode?: string }[]}
 */
export function cameraEncodings(codec, count, height) {
  if (isSvc(codec)) {
    return Array.from({ length: count }, (_, i) =>
      i === 0 ? { active: true, scaleResolutionDownBy: 1, scalabilityMode: scalabilityMode(height) } : { active: false },
    );
  }
  return Array.from({ length: count }, (_, i) => ({
    active: true,
    scaleResolutionDownBy: 2 ** (count - 1 - i),
    scalabilityMode: 'L1T3',
  }));
}

/**
 * `capabilities` (the browser's video codecs) reordered so that `order` comes first, in
 * that order; the rest (RTX, RED, FEC, codecs not in `order`) keeps its place after them.
 * @template {{ mimeType: string }} C
 * @param {C[]} capabilities
 * @param {string[]} order
 * @returns {C[]}
 */
export function orderCapabilities(capabilities, order) {
  const rank = (/** @type {C} */ c) => {
    const i = order.indexOf(c.mimeType.toLowerCase().replace(/^video\//, ''));
    return i === -1 ? order.length : i;
  };
  return capabilities
    .map((c, i) => ({ c, i }))
    .sort((a, b) => rank(a.c) - rank(b.c) || a.i - b.i)
    .map(({ c }) => c);
}
