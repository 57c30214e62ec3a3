// @ts-check
/**
 * The remote offer, the way a Jitsi client builds it (pure, no browser API).
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
 */

import { isBridgeSource, remoteSources } from './jingle.js';
import { candidateToSdp, payloadLines } from './sdp.js';

/** @typedef {import('./jingle.js').IceTransport} IceTransport */
/** @typedef {import('./jingle.js').JingleContents} JingleContents */
/** @typedef {import('./jingle.js').MediaDescription} MediaDescription */
/** @typedef {import('./jingle.js').MediaKind} MediaKind */
/** @typedef {import('./jingle.js').RemoteSource} RemoteSource */
/** @typedef {import('./jingle.js').SsrcInfo} SsrcInfo */

/** Limit on the m-lines one session may make us render (hostile-input guard). */
const MAX_SLOTS = 500;

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
