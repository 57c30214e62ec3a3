// @ts-check
/**
 * Simulcast by SDP munging, as lib-jitsi-meet does it: before setLocalDescription, the
 * camera's m-line gets two more SSRCs (each with an RTX partner) and an
 * `a=ssrc-group:SIM` listing the three primaries, lowest resolution first. Chrome honours
 * the SIM group in a local description and encodes three layers (scaled 4:2:1).
 * The added SSRCs are kept per m-line so every later renegotiation uses the same ones.
 */

import { parseSdp, sectionSsrcs } from './sdp.js';

export const SIMULCAST_LAYERS = 3;

/** Random non-zero 32-bit SSRC not in `taken`. @param {Set<number>} taken */
function newSsrc(taken) {
  for (;;) {
    const ssrc = 1 + Math.floor(Math.random() * 0xfffffffe);
    if (!taken.has(ssrc)) {
      taken.add(ssrc);
      return ssrc;
    }
  }
}

/**
 * @typedef {object} SimulcastLayout
 * @property {number[]} primaries one SSRC per layer
 * @property {(number | undefined)[]} rtx RTX partner per layer (if the m-line has RTX)
 */

/**
 * Returns `sdp` with the m-line `mid` turned into three simulcast layers. An m-line that
 * sends nothing (no SSRC) or already has a SIM group is left as it is.
 * @param {string} sdp
 * @param {string} mid
 * @param {Map<string, SimulcastLayout>} layouts kept between calls, per mid
 * @returns {string}
 */
export function mungeSimulcast(sdp, mid, layouts) {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const lines = sdp.split(/\r?\n/);
  const section = parseSdp(sdp).find((m) => m.mid === mid);
  if (!section || section.direction === 'recvonly' || section.direction === 'inactive') return sdp;
  const { ssrcs, groups } = sectionSsrcs(section);
  if (ssrcs.length === 0 || groups.some((g) => g.semantics === 'SIM')) return sdp;

  const fid = groups.find((g) => g.semantics === 'FID');
  const primary = fid?.ssrcs[0] ?? ssrcs[0].ssrc;
  const msid = ssrcs.find((s) => s.ssrc === primary)?.msid;
  const cname = section.attrs.map((a) => /^ssrc:\d+ cname:(.*)$/.exec(a)?.[1]).find(Boolean) ?? 'convene';

  let layout = layouts.get(mid);
  if (!layout || layout.primaries[0] !== primary) {
    const taken = new Set(ssrcs.map((s) => s.ssrc));
    const primaries = [primary];
    const rtx = [fid?.ssrcs[1]];
    for (let i = 1; i < SIMULCAST_LAYERS; i++) {
      primaries.push(newSsrc(taken));
      rtx.push(fid ? newSsrc(taken) : undefined);
    }
    layout = { primaries, rtx };
    layouts.set(mid, layout);
  }

  /** @type {string[]} */
  const ssrcLines = [`a=ssrc-group:SIM ${layout.primaries.join(' ')}`];
  layout.primaries.forEach((p, i) => {
    const r = layout.rtx[i];
    if (r !== undefined) ssrcLines.push(`a=ssrc-group:FID ${p} ${r}`);
  });
  layout.primaries.forEach((p, i) => {
    for (const ssrc of [p, layout.rtx[i]]) {
      if (ssrc === undefined) continue;
      ssrcLines.push(`a=ssrc:${ssrc} cname:${cname}`);
      if (msid) ssrcLines.push(`a=ssrc:${ssrc} msid:${msid}`);
    }
  });

  // Replace the section's ssrc and ssrc-group lines with the simulcast ones, in place.
  let inSection = false;
  let inserted = false;
  /** @type {string[]} */
  const out = [];
  let currentMid = '';
  for (const line of lines) {
    if (line.startsWith('m=')) {
      inSection = false;
      currentMid = '';
    }
    if (line.startsWith('a=mid:')) {
      currentMid = line.slice(6);
      inSection = currentMid === mid;
    }
    if (inSection && (line.startsWith('a=ssrc:') || line.startsWith('a=ssrc-group:'))) {
      if (!inserted) {
        out.push(...ssrcLines);
        inserted = true;
      }
      continue;
    }
    out.push(line);
  }
  return out.join(eol);
}

/**
 * The SIM group of an m-line, if any.
 * @param {string} sdp @param {string} mid @returns {number[] | undefined}
 */
export function simulcastSsrcs(sdp, mid) {
  const section = parseSdp(sdp).find((m) => m.mid === mid);
  return section ? sectionSsrcs(section).groups.find((g) => g.semantics === 'SIM')?.ssrcs : undefined;
}
