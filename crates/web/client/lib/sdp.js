// @ts-check
/**
 * SDP text: splitting a description into media sections, reading their attributes and
 * SSRCs, and the codec and candidate lines both directions need. Pure functions.
 */

/** @typedef {import('./jingle.js').Candidate} Candidate */
/** @typedef {import('./jingle.js').MediaKind} MediaKind */
/** @typedef {import('./jingle.js').PayloadType} PayloadType */
/** @typedef {import('./jingle.js').SsrcGroup} SsrcGroup */

/**
 * A decimal attribute value (Jingle or SDP), or `fallback` when absent or malformed.
 * @param {string | undefined} s @param {number} [fallback]
 */
export function int(s, fallback = 0) {
  const n = Number.parseInt(s ?? '', 10);
  return Number.isFinite(n) ? n : fallback;
}

/** @param {PayloadType} p */
export function payloadLines(p) {
  const lines = [`a=rtpmap:${p.id} ${p.name}/${p.clockrate}${p.channels && p.channels > 1 ? `/${p.channels}` : ''}`];
  for (const fb of p.feedback) lines.push(`a=rtcp-fb:${p.id} ${fb.type}${fb.subtype ? ` ${fb.subtype}` : ''}`);
  if (p.params.length > 0) {
    lines.push(`a=fmtp:${p.id} ${p.params.map(([k, v]) => (k ? `${k}=${v}` : v)).join(';')}`);
  }
  return lines;
}

/** @param {Candidate} c @returns {string} the `candidate:` attribute value */
export function candidateToSdp(c) {
  let s = `candidate:${c.foundation} ${c.component} ${c.protocol} ${c.priority} ${c.ip} ${c.port} typ ${c.type}`;
  if (c.relAddr !== undefined && c.relPort !== undefined) s += ` raddr ${c.relAddr} rport ${c.relPort}`;
  if (c.tcpType) s += ` tcptype ${c.tcpType}`;
  return `${s} generation ${c.generation ?? 0}`;
}

/**
 * Parses a `candidate:` line (as in RTCIceCandidate.candidate).
 * @param {string} line
 * @returns {Candidate | undefined}
 */
export function candidateFromSdp(line) {
  const parts = line.replace(/^a=/, '').replace(/^candidate:/, '').trim().split(/\s+/);
  if (parts.length < 8 || parts[6] !== 'typ') return undefined;
  /** @type {Candidate} */
  const c = {
    foundation: parts[0],
    component: int(parts[1], 1),
    protocol: parts[2].toLowerCase(),
    priority: int(parts[3]),
    ip: parts[4],
    port: int(parts[5]),
    type: parts[7],
    generation: 0,
  };
  for (let i = 8; i + 1 < parts.length; i += 2) {
    const [key, value] = [parts[i], parts[i + 1]];
    if (key === 'raddr') c.relAddr = value;
    else if (key === 'rport') c.relPort = int(value);
    else if (key === 'tcptype') c.tcpType = value;
    else if (key === 'generation') c.generation = int(value);
  }
  return c;
}

/**
 * @typedef {object} SdpMedia
 * @property {MediaKind | string} kind
 * @property {string} mid
 * @property {string} direction
 * @property {string[]} attrs attribute lines without the leading `a=`
 */

/**
 * Splits an SDP into its media sections (session-level ICE/DTLS attributes are copied
 * into every section so each one stands alone).
 * @param {string} sdp
 * @returns {SdpMedia[]}
 */
export function parseSdp(sdp) {
  const lines = sdp.split(/\r?\n/).filter(Boolean);
  /** @type {string[]} */
  const session = [];
  /** @type {SdpMedia[]} */
  const media = [];
  for (const line of lines) {
    if (line.startsWith('m=')) {
      media.push({ kind: line.slice(2).split(' ')[0], mid: '', direction: 'sendrecv', attrs: [] });
    } else if (line.startsWith('a=')) {
      const attr = line.slice(2);
      const current = media[media.length - 1];
      if (current) current.attrs.push(attr);
      else session.push(attr);
    }
  }
  const inherited = session.filter((a) => /^(ice-ufrag|ice-pwd|fingerprint|setup):/.test(a));
  for (const m of media) {
    for (const a of inherited) {
      const key = a.split(':')[0];
      if (!m.attrs.some((x) => x.startsWith(`${key}:`))) m.attrs.push(a);
    }
    m.mid = attrValue(m, 'mid') ?? '';
    m.direction = m.attrs.find((a) => ['sendrecv', 'sendonly', 'recvonly', 'inactive'].includes(a)) ?? 'sendrecv';
  }
  return media;
}

/** @param {SdpMedia} m @param {string} name @returns {string | undefined} */
export function attrValue(m, name) {
  const line = m.attrs.find((a) => a.startsWith(`${name}:`));
  return line?.slice(name.length + 1);
}

/** @param {SdpMedia} m @param {string} name @returns {string[]} */
export function attrValues(m, name) {
  return m.attrs.filter((a) => a.startsWith(`${name}:`)).map((a) => a.slice(name.length + 1));
}

/**
 * The SSRCs and groups a media section sends, with their msid.
 * @param {SdpMedia} m
 * @returns {{ ssrcs: { ssrc: number, msid: string | undefined }[], groups: SsrcGroup[] }}
 */
export function sectionSsrcs(m) {
  /** @type {Map<number, string | undefined>} */
  const ssrcs = new Map();
  const mediaMsid = attrValue(m, 'msid');
  for (const value of attrValues(m, 'ssrc')) {
    const match = /^(\d+)(?:\s+([^:]+)(?::(.*))?)?$/.exec(value);
    if (!match) continue;
    const ssrc = Number(match[1]);
    if (!ssrcs.has(ssrc)) ssrcs.set(ssrc, mediaMsid);
    if (match[2] === 'msid' && match[3]) ssrcs.set(ssrc, match[3]);
  }
  const groups = attrValues(m, 'ssrc-group').map((v) => {
    const [semantics, ...rest] = v.split(' ');
    return { semantics, ssrcs: rest.map(Number) };
  });
  return { ssrcs: [...ssrcs].map(([ssrc, msid]) => ({ ssrc, msid })), groups };
}
