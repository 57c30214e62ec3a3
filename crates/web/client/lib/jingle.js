// @ts-check
/**
 * Jingle contents as the focus sends them (session-initiate, source-add, source-remove),
 * read into plain data: codecs, header extensions, sources and groups per media kind,
 * the bridge's ICE/DTLS transport. Pure functions, no browser API.
 */

import { int } from './sdp.js';
import { NS, XmlElement } from './xml.js';

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
export function isBridgeSource(s) {
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
