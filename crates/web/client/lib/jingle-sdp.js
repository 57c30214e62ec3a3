// @ts-check
/**
 * Jingle ⇄ SDP, the way a Jitsi client does it (pure functions, no browser API).
 *
 * The focus is always the offerer. Its session-initiate (and later source-add /
 * source-remove) is kept as a `SessionModel`: the bridge's transport and codecs plus an
 * ordered, append-only list of m-line "slots". From it we render a complete remote offer:
 *  - mid 0 audio and mid 1 video are sendrecv: our microphone and camera go there, and
 *    the bridge's own feedback SSRCs (owner `jvb`, msid `mixedmslabel ...`) are listed;
 *  - every remote source (another participant's microphone, camera or screen) gets its
 *    own m-line, sendonly from the bridge, with its SSRCs and msid; when the source goes
 *    away the m-line turns inactive (mids are never reused, as the browser requires);
 *  - one spare receive-only m-line per kind, right after the main ones, never carries a
 *    source. With two receiving m-lines of a kind sharing payload types, Chrome turns off
 *    payload-type demultiplexing (webrtc issue 11477). Without it, packets of the first
 *    remote source that the bridge forwards before our source-add round is done would be
 *    latched onto the main m-line's default stream and never reach the m-line signalled
 *    for them a moment later; with it they are dropped until signalled;
 *  - extra local sources (screen share) get a recvonly m-line that our sender attaches to.
 * The browser's answer is turned back into Jingle contents (one `audio`, one `video`)
 * carrying our ICE credentials, DTLS fingerprint and sources with their names.
 */

import { NS, XmlElement, xml } from './xml.js';

/** @typedef {'audio' | 'video'} MediaKind */
/** @typedef {{ type: string, subtype?: string }} RtcpFeedback */
/**
 * @typedef {object} PayloadType
 * @property {number} id
 * @property {string} name
 * @property {number} clockrate
 * @property {number} [channels]
 * @property {Array<[string, string]>} params fmtp parameters; an empty name means a bare value
 * @property {RtcpFeedback[]} feedback
 */
/** @typedef {{ id: number, uri: string }} HeaderExtension */
/**
 * @typedef {object} Candidate
 * @property {string} foundation
 * @property {number} component
 * @property {string} protocol
 * @property {number} priority
 * @property {string} ip
 * @property {number} port
 * @property {string} type
 * @property {string} [relAddr]
 * @property {number} [relPort]
 * @property {string} [tcpType]
 * @property {number} [generation]
 */
/**
 * @typedef {object} IceTransport
 * @property {string} ufrag
 * @property {string} pwd
 * @property {{ hash: string, value: string, setup: string }[]} fingerprints
 * @property {Candidate[]} candidates
 * @property {string[]} webSocketUrls bridge-channel URLs (`web-socket` elements)
 */
/**
 * @typedef {object} SsrcInfo
 * @property {number} ssrc
 * @property {string} [name] source name, e.g. `ab12cd34-v0`
 * @property {string} [msid]
 * @property {string} [owner] endpoint id (or `jvb`)
 * @property {string} [videoType] `desktop` for a screen share
 */
/** @typedef {{ semantics: string, ssrcs: number[] }} SsrcGroup */
/**
 * @typedef {object} MediaDescription
 * @property {MediaKind} kind
 * @property {PayloadType[]} payloads
 * @property {HeaderExtension[]} hdrexts
 * @property {boolean} extmapAllowMixed
 * @property {SsrcInfo[]} ssrcs
 * @property {SsrcGroup[]} groups
 */
/**
 * @typedef {object} JingleContents
 * @property {Partial<Record<MediaKind, MediaDescription>>} media
 * @property {IceTransport | undefined} transport
 * @property {string | undefined} bridgeSessionId
 */
/**
 * A remote media source as the browser will receive it: its primary SSRC first, then its
 * RTX partner if any (simulcast is stripped to the first layer, as the bridge forwards
 * one layer on that SSRC pair).
 * @typedef {object} RemoteSource
 * @property {string} name
 * @property {string} owner
 * @property {MediaKind} kind
 * @property {string} msid
 * @property {string | undefined} videoType
 * @property {number[]} ssrcs
 * @property {SsrcGroup[]} groups
 */

/** Owner of the bridge's own feedback SSRCs. */
const BRIDGE_OWNER = 'jvb';
/** Limits on what one Jingle message may make us render (hostile-input guard). */
const MAX_SOURCES = 500;
const MAX_SLOTS = 500;

/** @param {string | undefined} s @param {number} [fallback] */
function int(s, fallback = 0) {
  const n = Number.parseInt(s ?? '', 10);
  return Number.isFinite(n) ? n : fallback;
}

/** @param {string | undefined} s */
function ssrcValue(s) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new Error(`invalid ssrc ${s}`);
  return n;
}

/**
 * Reads the contents of a Jingle element (session-initiate, source-add, source-remove).
 * @param {XmlElement} jingle
 * @returns {JingleContents}
 */
export function parseJingle(jingle) {
  /** @type {JingleContents} */
  const result = { media: {}, transport: undefined, bridgeSessionId: undefined };
  for (const content of jingle.all('content', NS.jingle)) {
    const desc = content.child('description', NS.rtp);
    const kind = desc?.attr('media') ?? content.attr('name');
    if (desc && (kind === 'audio' || kind === 'video')) {
      result.media[kind] = mergeDescriptions(result.media[kind], parseDescription(desc, kind));
    }
    const transport = content.child('transport', NS.ice);
    if (transport && !result.transport && transport.attr('ufrag')) {
      result.transport = parseTransport(transport);
    } else if (transport && result.transport) {
      result.transport.candidates.push(...parseTransport(transport).candidates);
    }
  }
  for (const json of jingle.all('json-message', NS.jitmeet)) addJsonSources(result, json.text);
  result.bridgeSessionId = jingle.child('bridge-session', NS.focus)?.attr('id');
  const count = Object.values(result.media).reduce((n, d) => n + (d?.ssrcs.length ?? 0), 0);
  if (count > MAX_SOURCES) throw new Error(`too many sources (${count})`);
  return result;
}

/** @param {MediaDescription | undefined} a @param {MediaDescription} b */
function mergeDescriptions(a, b) {
  if (!a) return b;
  a.ssrcs.push(...b.ssrcs);
  a.groups.push(...b.groups);
  if (a.payloads.length === 0) a.payloads = b.payloads;
  if (a.hdrexts.length === 0) a.hdrexts = b.hdrexts;
  return a;
}

/** @param {XmlElement} desc @param {MediaKind} kind @returns {MediaDescription} */
function parseDescription(desc, kind) {
  const common = desc.all('rtcp-fb', NS.rtcpFb).map(parseFeedback);
  const payloads = desc.all('payload-type').map((pt) => ({
    id: int(pt.attr('id')),
    name: pt.attr('name') ?? '',
    clockrate: int(pt.attr('clockrate')),
    channels: pt.attr('channels') ? int(pt.attr('channels')) : undefined,
    params: pt.all('parameter').map((p) => /** @type {[string, string]} */ ([p.attr('name') ?? '', p.attr('value') ?? ''])),
    feedback: [...pt.all('rtcp-fb', NS.rtcpFb).map(parseFeedback), ...common],
  }));
  const hdrexts = desc.all('rtp-hdrext', NS.hdrext).map((h) => ({ id: int(h.attr('id')), uri: h.attr('uri') ?? '' }));
  const ssrcs = desc.all('source', NS.ssma).map((s) => {
    const owner = s.child('ssrc-info', NS.jitmeet)?.attr('owner');
    return {
      ssrc: ssrcValue(s.attr('ssrc')),
      name: s.attr('name'),
      msid: s.all('parameter').find((p) => p.attr('name') === 'msid')?.attr('value'),
      owner: owner ? ownerId(owner) : undefined,
      videoType: s.attr('videoType'),
    };
  });
  const groups = desc.all('ssrc-group', NS.ssma).map((g) => ({
    semantics: g.attr('semantics') ?? '',
    ssrcs: g.all('source').map((s) => ssrcValue(s.attr('ssrc'))),
  }));
  return {
    kind,
    payloads,
    hdrexts,
    extmapAllowMixed: !!desc.child('extmap-allow-mixed', NS.hdrext),
    ssrcs,
    groups,
  };
}

/** @param {XmlElement} fb @returns {RtcpFeedback} */
function parseFeedback(fb) {
  return { type: fb.attr('type') ?? '', subtype: fb.attr('subtype') };
}

/** An owner may be an endpoint id or a full occupant JID (its resource is the id). */
/** @param {string} owner */
function ownerId(owner) {
  const slash = owner.lastIndexOf('/');
  return slash >= 0 ? owner.slice(slash + 1) : owner;
}

/** @param {XmlElement} transport @returns {IceTransport} */
function parseTransport(transport) {
  return {
    ufrag: transport.attr('ufrag') ?? '',
    pwd: transport.attr('pwd') ?? '',
    fingerprints: transport.all('fingerprint', NS.dtls).map((f) => ({
      hash: f.attr('hash') ?? 'sha-256',
      value: f.text.trim(),
      setup: f.attr('setup') ?? 'actpass',
    })),
    candidates: transport.all('candidate').map((c) => ({
      foundation: c.attr('foundation') ?? '1',
      component: int(c.attr('component'), 1),
      protocol: (c.attr('protocol') ?? 'udp').toLowerCase(),
      priority: int(c.attr('priority')),
      ip: c.attr('ip') ?? '',
      port: int(c.attr('port')),
      type: c.attr('type') ?? 'host',
      relAddr: c.attr('rel-addr'),
      relPort: c.attr('rel-port') ? int(c.attr('rel-port')) : undefined,
      tcpType: c.attr('tcptype'),
      generation: int(c.attr('generation')),
    })),
    webSocketUrls: transport
      .all('web-socket', NS.colibri)
      .map((w) => w.attr('url') ?? '')
      .filter(Boolean),
  };
}

/**
 * Jitsi's JSON-encoded sources (`json-message` with `{"sources": {owner: [video, videoGroups,
 * audio, audioGroups]}}`), merged into the XML-derived descriptions.
 * @param {JingleContents} result @param {string} text
 */
function addJsonSources(result, text) {
  /** @type {unknown} */
  const parsed = JSON.parse(text);
  const sources = /** @type {{ sources?: Record<string, unknown[]> }} */ (parsed)?.sources;
  if (!sources || typeof sources !== 'object') return;
  for (const [owner, lists] of Object.entries(sources)) {
    if (!Array.isArray(lists)) continue;
    /** @type {[MediaKind, number, number][]} */
    const layout = [
      ['video', 0, 1],
      ['audio', 2, 3],
    ];
    for (const [kind, srcIdx, grpIdx] of layout) {
      const srcs = Array.isArray(lists[srcIdx]) ? /** @type {any[]} */ (lists[srcIdx]) : [];
      const grps = Array.isArray(lists[grpIdx]) ? /** @type {any[]} */ (lists[grpIdx]) : [];
      if (srcs.length === 0) continue;
      const desc = (result.media[kind] ??= {
        kind,
        payloads: [],
        hdrexts: [],
        extmapAllowMixed: false,
        ssrcs: [],
        groups: [],
      });
      for (const s of srcs) {
        desc.ssrcs.push({
          ssrc: ssrcValue(String(s?.s)),
          name: typeof s?.n === 'string' ? s.n : undefined,
          msid: typeof s?.m === 'string' ? s.m : undefined,
          owner,
          videoType: s?.v === 'd' ? 'desktop' : undefined,
        });
      }
      for (const g of grps) {
        if (!Array.isArray(g) || g.length < 2) continue;
        const semantics = g[0] === 's' ? 'SIM' : g[0] === 'f' ? 'FID' : String(g[0]);
        desc.groups.push({ semantics, ssrcs: g.slice(1).map((x) => ssrcValue(String(x))) });
      }
    }
  }
}

/** @param {SsrcInfo} s */
function isBridgeSource(s) {
  return s.owner === BRIDGE_OWNER || (s.msid ?? '').includes('mixedmslabel');
}

/**
 * Groups signalled SSRCs into sources (by source name, else msid), stripping simulcast to
 * the first layer and its RTX partner.
 * @param {MediaDescription} desc
 * @returns {RemoteSource[]}
 */
export function remoteSources(desc) {
  /** @type {Map<string, SsrcInfo[]>} */
  const byKey = new Map();
  for (const s of desc.ssrcs) {
    if (isBridgeSource(s)) continue;
    const key = s.name ?? s.msid ?? `ssrc-${s.ssrc}`;
    const list = byKey.get(key) ?? [];
    if (!list.some((x) => x.ssrc === s.ssrc)) list.push(s);
    byKey.set(key, list);
  }
  /** @type {RemoteSource[]} */
  const out = [];
  for (const [key, list] of byKey) {
    const members = new Set(list.map((s) => s.ssrc));
    const groups = desc.groups.filter((g) => g.ssrcs.length > 0 && g.ssrcs.every((x) => members.has(x)));
    const sim = groups.find((g) => g.semantics === 'SIM');
    const fids = groups.filter((g) => g.semantics === 'FID' && g.ssrcs.length === 2);
    const rtxOf = new Set(fids.map((g) => g.ssrcs[1]));
    const primary = sim?.ssrcs[0] ?? list.find((s) => !rtxOf.has(s.ssrc))?.ssrc ?? list[0].ssrc;
    const fid = fids.find((g) => g.ssrcs[0] === primary);
    const first = list.find((s) => s.ssrc === primary) ?? list[0];
    const name = first.name ?? key;
    out.push({
      name,
      owner: list.find((s) => s.owner)?.owner ?? name.split('-')[0],
      kind: desc.kind,
      msid: first.msid ?? `${name} ${name}`,
      videoType: list.find((s) => s.videoType)?.videoType,
      ssrcs: fid ? [primary, fid.ssrcs[1]] : [primary],
      groups: fid ? [{ semantics: 'FID', ssrcs: [primary, fid.ssrcs[1]] }] : [],
    });
  }
  return out;
}

/**
 * @typedef {object} Slot
 * @property {string} mid
 * @property {MediaKind} kind
 * @property {'main' | 'spare' | 'remote' | 'local'} role main: our mic/camera (sendrecv);
 *   spare: receive-only, never a source (see the module comment); local: extra sender
 * @property {'sendrecv' | 'sendonly' | 'recvonly' | 'inactive'} direction in the remote offer
 * @property {RemoteSource | undefined} source the remote source received on this m-line
 */

/** The remote side of the session, from which every remote offer is rendered. */
export class SessionModel {
  /** @type {Slot[]} */
  slots = [];
  /** @type {SsrcInfo[]} bridge feedback SSRCs, listed on the main m-lines */
  bridgeSsrcs = [];
  version = 1;

  /**
   * @param {string} sid
   * @param {JingleContents} offer the session-initiate's contents
   */
  constructor(sid, offer) {
    if (!offer.transport) throw new Error('session-initiate without an ICE transport');
    if (!offer.media.audio && !offer.media.video) throw new Error('session-initiate without audio or video');
    this.sid = sid;
    this.sessionId = String(Math.floor(Math.random() * 1e15));
    /** @type {IceTransport} */
    this.transport = offer.transport;
    /** @type {Partial<Record<MediaKind, MediaDescription>>} codecs and header extensions per kind */
    this.codecs = offer.media;
    const kinds = /** @type {MediaKind[]} */ (['audio', 'video']).filter((kind) => offer.media[kind]);
    for (const kind of kinds) {
      this.slots.push({ mid: String(this.slots.length), kind, role: 'main', direction: 'sendrecv', source: undefined });
    }
    for (const kind of kinds) {
      this.slots.push({ mid: String(this.slots.length), kind, role: 'spare', direction: 'sendonly', source: undefined });
    }
    this.addSources(offer);
  }

  /**
   * Adds the sources of an offer or source-add; returns the sources new to us.
   * @param {JingleContents} contents
   * @returns {RemoteSource[]}
   */
  addSources(contents) {
    /** @type {RemoteSource[]} */
    const added = [];
    for (const desc of Object.values(contents.media)) {
      if (!desc || !this.codecs[desc.kind]) continue;
      for (const s of desc.ssrcs) {
        if (isBridgeSource(s) && !this.bridgeSsrcs.some((b) => b.ssrc === s.ssrc)) {
          this.bridgeSsrcs.push({ ...s, msid: s.msid ?? `mixedmslabel mixedlabel${desc.kind}0` });
        }
      }
      for (const source of remoteSources(desc)) {
        const existing = this.slots.find((s) => s.source?.name === source.name && s.direction !== 'inactive');
        if (existing || this.#knowsSsrc(source.ssrcs[0])) continue;
        if (this.slots.length >= MAX_SLOTS) throw new Error('too many m-lines');
        this.slots.push({ mid: String(this.slots.length), kind: source.kind, role: 'remote', direction: 'sendonly', source });
        added.push(source);
      }
    }
    return added;
  }

  /**
   * Removes the sources whose SSRCs a source-remove lists; returns them.
   * @param {JingleContents} contents
   * @returns {RemoteSource[]}
   */
  removeSources(contents) {
    const gone = new Set(Object.values(contents.media).flatMap((d) => d?.ssrcs.map((s) => s.ssrc) ?? []));
    /** @type {RemoteSource[]} */
    const removed = [];
    for (const slot of this.slots) {
      if (slot.source && slot.source.ssrcs.some((x) => gone.has(x))) {
        removed.push(slot.source);
        slot.source = undefined;
        slot.direction = 'inactive';
      }
    }
    this.bridgeSsrcs = this.bridgeSsrcs.filter((s) => !gone.has(s.ssrc));
    return removed;
  }

  /**
   * Adds an m-line for an extra local source (screen share); returns its mid.
   * @param {MediaKind} kind
   */
  addLocalSlot(kind) {
    if (!this.codecs[kind]) throw new Error(`the session has no ${kind}`);
    const mid = String(this.slots.length);
    this.slots.push({ mid, kind, role: 'local', direction: 'recvonly', source: undefined });
    return mid;
  }

  /** @param {string} mid */
  closeLocalSlot(mid) {
    const slot = this.slots.find((s) => s.mid === mid && s.role === 'local');
    if (slot) slot.direction = 'inactive';
  }

  /** @param {number} ssrc */
  #knowsSsrc(ssrc) {
    return this.slots.some((s) => s.direction !== 'inactive' && s.source?.ssrcs.includes(ssrc));
  }

  /** @param {string} mid */
  slot(mid) {
    return this.slots.find((s) => s.mid === mid);
  }

  /** Renders the remote offer for the current state; each call is a new SDP version. */
  toSdp() {
    const lines = [
      'v=0',
      `o=- ${this.sessionId} ${this.version++} IN IP4 0.0.0.0`,
      's=-',
      't=0 0',
      'a=msid-semantic: WMS *',
      `a=group:BUNDLE ${this.slots.map((s) => s.mid).join(' ')}`,
    ];
    for (const slot of this.slots) lines.push(...this.#mediaSection(slot));
    return lines.join('\r\n') + '\r\n';
  }

  /** @param {Slot} slot */
  #mediaSection(slot) {
    const desc = /** @type {MediaDescription} */ (this.codecs[slot.kind]);
    const lines = [
      `m=${slot.kind} 9 UDP/TLS/RTP/SAVPF ${desc.payloads.map((p) => p.id).join(' ')}`,
      'c=IN IP4 0.0.0.0',
      'a=rtcp:9 IN IP4 0.0.0.0',
      `a=ice-ufrag:${this.transport.ufrag}`,
      `a=ice-pwd:${this.transport.pwd}`,
    ];
    for (const f of this.transport.fingerprints) lines.push(`a=fingerprint:${f.hash} ${f.value}`);
    lines.push(`a=setup:${this.transport.fingerprints[0]?.setup ?? 'actpass'}`, `a=mid:${slot.mid}`);
    for (const h of desc.hdrexts) lines.push(`a=extmap:${h.id} ${h.uri}`);
    if (desc.extmapAllowMixed) lines.push('a=extmap-allow-mixed');
    lines.push(`a=${slot.direction}`, 'a=rtcp-mux');
    for (const p of desc.payloads) lines.push(...payloadLines(p));
    if (slot.role === 'main') {
      for (const s of this.bridgeSsrcs.filter((b) => this.#kindOfBridgeSsrc(b) === slot.kind)) {
        lines.push(`a=ssrc:${s.ssrc} msid:${s.msid}`);
      }
    } else if (slot.source && slot.direction !== 'inactive') {
      const source = slot.source;
      lines.push(`a=msid:${source.msid}`);
      for (const g of source.groups) lines.push(`a=ssrc-group:${g.semantics} ${g.ssrcs.join(' ')}`);
      for (const ssrc of source.ssrcs) {
        lines.push(`a=ssrc:${ssrc} cname:${source.owner}`, `a=ssrc:${ssrc} msid:${source.msid}`);
      }
    }
    for (const c of this.transport.candidates) lines.push(`a=${candidateToSdp(c)}`);
    return lines;
  }

  /** @param {SsrcInfo} s @returns {MediaKind} */
  #kindOfBridgeSsrc(s) {
    return (s.msid ?? '').includes('video') ? 'video' : 'audio';
  }
}

/** @param {PayloadType} p */
function payloadLines(p) {
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

/** @param {Candidate} c @param {string} id */
export function candidateToXml(c, id) {
  return xml('candidate', {
    component: c.component,
    foundation: c.foundation,
    generation: c.generation ?? 0,
    id,
    network: 0,
    priority: c.priority,
    protocol: c.protocol,
    type: c.type,
    ip: c.ip,
    port: c.port,
    'rel-addr': c.relAddr,
    'rel-port': c.relPort,
    tcptype: c.tcpType,
  });
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
function attrValues(m, name) {
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

/**
 * @typedef {object} LocalSource
 * @property {string} mid the m-line it is sent on
 * @property {string} name source name (`<endpoint>-a0`, `-v0`, `-v1`)
 * @property {string} [videoType] `desktop` for a screen share
 */

/**
 * Builds the `description` element of one kind from the answer: codecs and header
 * extensions of the first m-line of that kind, and the sources sent on the listed mids.
 * @param {SdpMedia[]} sections @param {MediaKind} kind @param {LocalSource[]} locals
 * @param {{ codecs: boolean }} options codecs: false for source-add/remove
 */
function descriptionFromAnswer(sections, kind, locals, options) {
  const desc = xml('description', { xmlns: NS.rtp, media: kind });
  const first = sections.find((m) => m.kind === kind);
  if (first && options.codecs) {
    for (const rtpmap of attrValues(first, 'rtpmap')) {
      const [id, codec] = rtpmap.split(' ');
      const [name, clockrate, channels] = (codec ?? '').split('/');
      const pt = xml('payload-type', { id, name, clockrate, channels });
      const fmtp = attrValues(first, 'fmtp').find((f) => f.startsWith(`${id} `));
      for (const param of fmtp ? fmtp.slice(id.length + 1).split(';') : []) {
        const eq = param.indexOf('=');
        pt.append(xml('parameter', eq >= 0 ? { name: param.slice(0, eq).trim(), value: param.slice(eq + 1).trim() } : { value: param.trim() }));
      }
      for (const fb of attrValues(first, 'rtcp-fb').filter((f) => f.startsWith(`${id} `))) {
        const [, type, subtype] = fb.split(' ');
        pt.append(xml('rtcp-fb', { xmlns: NS.rtcpFb, type, subtype }));
      }
      desc.append(pt);
    }
  }
  for (const local of locals) {
    const section = sections.find((m) => m.mid === local.mid && m.kind === kind);
    if (!section || section.direction === 'inactive' || section.direction === 'recvonly') continue;
    const { ssrcs, groups } = sectionSsrcs(section);
    for (const { ssrc, msid } of ssrcs) {
      desc.append(
        xml('source', { xmlns: NS.ssma, ssrc, name: local.name, videoType: local.videoType }, [
          msid ? xml('parameter', { name: 'msid', value: msid }) : undefined,
        ]),
      );
    }
    for (const g of groups) {
      desc.append(xml('ssrc-group', { xmlns: NS.ssma, semantics: g.semantics }, g.ssrcs.map((ssrc) => xml('source', { ssrc }))));
    }
  }
  if (first && options.codecs) {
    if (first.attrs.includes('rtcp-mux')) desc.append(xml('rtcp-mux'));
    for (const ext of attrValues(first, 'extmap')) {
      const [id, uri] = ext.split(' ');
      desc.append(xml('rtp-hdrext', { xmlns: NS.hdrext, id: id.split('/')[0], uri }));
    }
    if (first.attrs.includes('extmap-allow-mixed')) desc.append(xml('extmap-allow-mixed', { xmlns: NS.hdrext }));
  }
  return desc;
}

/** @param {SdpMedia} section @param {Candidate[]} candidates */
function transportFromAnswer(section, candidates = []) {
  const [hash, value] = (attrValue(section, 'fingerprint') ?? '').split(' ');
  const transport = xml('transport', {
    xmlns: NS.ice,
    ufrag: attrValue(section, 'ice-ufrag'),
    pwd: attrValue(section, 'ice-pwd'),
  });
  if (hash && value) {
    transport.append(xml('fingerprint', { xmlns: NS.dtls, hash, setup: attrValue(section, 'setup') ?? 'active' }, value));
  }
  candidates.forEach((c, i) => transport.append(candidateToXml(c, `c${i}`)));
  return transport;
}

/**
 * The contents of our session-accept: one `audio` and one `video` content (whatever the
 * number of m-lines), each with codecs, our sources, and our ICE/DTLS transport.
 * @param {string} answerSdp
 * @param {LocalSource[]} locals
 * @returns {XmlElement[]} the `group` element then the contents
 */
export function answerToJingle(answerSdp, locals) {
  const sections = parseSdp(answerSdp);
  const kinds = /** @type {MediaKind[]} */ (['audio', 'video']).filter((k) => sections.some((m) => m.kind === k));
  const candidates = sections.flatMap((m) => attrValues(m, 'candidate').map((c) => candidateFromSdp(c))).filter((c) => !!c);
  const group = xml('group', { xmlns: NS.grouping, semantics: 'BUNDLE' }, kinds.map((k) => xml('content', { name: k })));
  const contents = kinds.map((kind, i) => {
    const first = /** @type {SdpMedia} */ (sections.find((m) => m.kind === kind));
    return xml('content', { creator: 'responder', name: kind, senders: 'both' }, [
      descriptionFromAnswer(sections, kind, locals, { codecs: true }),
      transportFromAnswer(first, i === 0 ? candidates : []),
    ]);
  });
  return [group, ...contents];
}

/**
 * Contents for a source-add or source-remove of our own sources.
 * @param {string} localSdp @param {LocalSource[]} locals the sources to announce
 * @returns {XmlElement[]}
 */
export function sourcesToJingle(localSdp, locals) {
  const sections = parseSdp(localSdp);
  /** @type {XmlElement[]} */
  const contents = [];
  for (const kind of /** @type {MediaKind[]} */ (['audio', 'video'])) {
    const ours = locals.filter((l) => sections.some((m) => m.mid === l.mid && m.kind === kind));
    if (ours.length === 0) continue;
    contents.push(xml('content', { creator: 'responder', name: kind, senders: 'both' }, [descriptionFromAnswer(sections, kind, ours, { codecs: false })]));
  }
  return contents;
}
