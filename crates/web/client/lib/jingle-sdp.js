// @ts-check
/**
 * Our side back into Jingle, the way a Jitsi client does it: the browser's answer becomes
 * the session-accept contents (one `audio`, one `video`, whatever the number of m-lines)
 * carrying our ICE credentials, DTLS fingerprint and sources with their names; later
 * local descriptions become source-add/remove contents. Pure functions, no browser API.
 */

import { attrValue, attrValues, candidateFromSdp, parseSdp, sectionSsrcs } from './sdp.js';
import { NS, XmlElement, xml } from './xml.js';

/** @typedef {import('./jingle.js').Candidate} Candidate */
/** @typedef {import('./jingle.js').MediaKind} MediaKind */
/** @typedef {import('./sdp.js').SdpMedia} SdpMedia */

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
