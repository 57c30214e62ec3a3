// @ts-check
/**
 * One Jingle session with the focus, backed by one RTCPeerConnection to the bridge.
 * The focus offers, we answer; every change (source-add/remove, our screen share) is a
 * new round of remote offer → answer on the same PeerConnection. Work is serialized on a
 * queue so that overlapping Jingle messages cannot interleave renegotiations.
 */

import { cameraEncodings, isSvc, orderCapabilities } from './codecs.js';
import { Emitter } from './emitter.js';
import { parseJingle } from './jingle.js';
import { answerToJingle, candidateToXml, sourcesToJingle } from './jingle-sdp.js';
import { candidateFromSdp, candidateToSdp } from './sdp.js';
import { SessionModel } from './session-model.js';
import { mungeSimulcast, SIMULCAST_LAYERS } from './simulcast.js';
import { NS, XmlElement, xml } from './xml.js';
import { XmppConnection } from './xmpp.js';

/** @typedef {import('./jingle.js').RemoteSource} RemoteSource */
/** @typedef {import('./jingle-sdp.js').LocalSource} LocalSource */
/** @typedef {import('./jingle.js').JingleContents} JingleContents */

/**
 * @typedef {object} SessionEvents
 * @property {{ source: RemoteSource, track: MediaStreamTrack }} track a remote source's track
 * @property {RemoteSource} source-removed
 * @property {RTCIceConnectionState} ice-state
 * @property {boolean} simulcast whether the camera really sends simulcast layers
 */

/**
 * @typedef {object} SessionOptions
 * @property {XmppConnection} xmpp
 * @property {string} focusJid the focus occupant, `room@muc/focus`
 * @property {string} ownJid our occupant JID
 * @property {string} endpointId
 * @property {boolean} simulcast
 * @property {string[]} codecs our video codec preference order (see codecs.js)
 * @property {string} sendCodec the video codec to send at first (see `setSendCodec`)
 * @property {{ audio?: MediaStreamTrack, video?: MediaStreamTrack }} tracks tracks to send (absent = muted)
 */

const CANDIDATE_BATCH_MS = 50;

/** @extends {Emitter<SessionEvents>} */
export class JingleSession extends Emitter {
  /** @type {Promise<unknown>} */
  #queue = Promise.resolve();
  /** @type {Map<string, import('./simulcast.js').SimulcastLayout>} */
  #simulcastLayouts = new Map();
  /** @type {Map<string, LocalSource & { track: MediaStreamTrack | null, stream: MediaStream }>} by mid */
  #locals = new Map();
  /** @type {RTCIceCandidate[]} */
  #pendingCandidates = [];
  #accepted = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #candidateTimer;
  #closed = false;
  #simulcast;
  #sendCodec;
  /** @type {Map<string, { energy: number, duration: number }>} audio energy totals by stats id, at the last poll */
  #audioEnergy = new Map();

  /**
   * @param {SessionOptions} options
   * @param {string} sid
   * @param {JingleContents} offer
   * @param {string} initiator
   */
  constructor(options, sid, offer, initiator) {
    super();
    this.options = options;
    this.sid = sid;
    this.initiator = initiator;
    this.model = new SessionModel(sid, offer);
    this.webSocketUrls = offer.transport?.webSocketUrls ?? [];
    // An SVC codec goes out as one stream (one SSRC and its RTX), as lib-jitsi-meet signals
    // it: the bridge selects layers within it. Decided once: later codec switches keep the
    // SSRCs that were signalled.
    this.#simulcast = options.simulcast && !isSvc(options.sendCodec);
    this.#sendCodec = options.sendCodec;
    this.pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require', iceServers: [] });
    this.pc.ontrack = (ev) => {
      const slot = this.model.slot(ev.transceiver.mid ?? '');
      if (slot?.role === 'remote' && slot.source) this.emit('track', { source: slot.source, track: ev.track });
    };
    this.pc.onicecandidate = (ev) => {
      if (ev.candidate?.candidate) this.#queueCandidate(ev.candidate);
    };
    this.pc.oniceconnectionstatechange = () => this.emit('ice-state', this.pc.iceConnectionState);
    const stream = new MediaStream();
    for (const slot of this.model.slots.filter((s) => s.role === 'main')) {
      const track = options.tracks[slot.kind] ?? null;
      const name = `${options.endpointId}-${slot.kind === 'audio' ? 'a' : 'v'}0`;
      this.#locals.set(slot.mid, { mid: slot.mid, name, track, stream });
    }
  }

  /** Answers the session-initiate: negotiates and sends session-accept. */
  start() {
    return this.#enqueue(async () => {
      await this.#negotiate();
      if (this.#simulcast && this.options.tracks.video && !this.#simulcastHonoured()) {
        console.warn('the browser ignored the simulcast SSRC group: sending one video layer');
        this.#simulcast = false;
        await this.#negotiate();
      }
      this.emit('simulcast', this.#simulcast);
      const contents = answerToJingle(/** @type {string} */ (this.pc.localDescription?.sdp), [...this.#locals.values()]);
      await this.#sendJingle('session-accept', contents, { responder: this.options.ownJid });
      this.#accepted = true;
      this.#flushCandidates();
    });
  }

  /** @param {XmlElement} jingle */
  sourceAdd(jingle) {
    const contents = parseJingle(jingle);
    return this.#enqueue(async () => {
      if (this.model.addSources(contents).length > 0) await this.#negotiate();
    });
  }

  /** @param {XmlElement} jingle */
  sourceRemove(jingle) {
    const contents = parseJingle(jingle);
    return this.#enqueue(async () => {
      const removed = this.model.removeSources(contents);
      if (removed.length === 0) return;
      await this.#negotiate();
      for (const source of removed) this.emit('source-removed', source);
    });
  }

  /** @param {XmlElement} jingle */
  transportInfo(jingle) {
    const candidates = parseJingle(jingle).transport?.candidates ?? [];
    return this.#enqueue(async () => {
      for (const c of candidates) {
        await this.pc.addIceCandidate({ candidate: candidateToSdp(c), sdpMid: '0', sdpMLineIndex: 0 });
      }
    });
  }

  /**
   * Sends `track` as our microphone or camera, or stops sending (null = muted). Muting
   * replaces the track with nothing, so no packets flow at all.
   * @param {'audio' | 'video'} kind @param {MediaStreamTrack | null} track
   */
  setTrack(kind, track) {
    return this.#enqueue(async () => {
      const mid = this.model.slots.find((s) => s.role === 'main' && s.kind === kind)?.mid;
      const local = mid === undefined ? undefined : this.#locals.get(mid);
      if (!local) return;
      local.track = track;
      const sender = this.pc.getTransceivers().find((t) => t.mid === mid)?.sender;
      await sender?.replaceTrack(track);
      if (kind === 'video') await this.#applyCameraEncodings();
    });
  }

  /**
   * Sends the camera in `codec` from now on (one the session negotiated; else VP8),
   * without renegotiating: the encodings name the codec (`RTCRtpEncodingParameters.codec`).
   * @param {string} codec
   */
  setSendCodec(codec) {
    return this.#enqueue(async () => {
      if (codec === this.#sendCodec) return;
      this.#sendCodec = codec;
      await this.#applyCameraEncodings();
    });
  }

  /** The codec the camera is configured to send, as negotiated (`vp8`, `vp9`, `av1`, ...). */
  get cameraCodec() {
    const encoding = /** @type {{ codec?: { mimeType: string } } | undefined} */ (this.#cameraSender()?.getParameters().encodings[0]);
    return encoding?.codec?.mimeType.toLowerCase().replace(/^video\//, '');
  }

  #cameraSender() {
    const mid = this.model.slots.find((s) => s.role === 'main' && s.kind === 'video')?.mid;
    return this.pc.getTransceivers().find((t) => t.mid === mid)?.sender;
  }

  /**
   * Configures the camera's encodings for the send codec: simulcast for VP8 and H.264,
   * SVC in the first encoding for VP9 and AV1 (codecs.js). A muted camera is configured
   * when its track comes back.
   */
  async #applyCameraEncodings() {
    const sender = this.#cameraSender();
    if (!sender?.track) return;
    const params = /** @type {RTCRtpSendParameters & { codecs: { mimeType: string }[] }} */ (sender.getParameters());
    if (params.encodings.length === 0) return;
    const negotiated = (/** @type {string} */ name) => params.codecs.find((c) => c.mimeType.toLowerCase() === `video/${name}`);
    const codec = negotiated(this.#sendCodec) ? this.#sendCodec : 'vp8';
    const wanted = cameraEncodings(codec, params.encodings.length, sender.track.getSettings().height ?? 0);
    params.encodings.forEach((encoding, i) => {
      Object.assign(encoding, wanted[i], { codec: negotiated(codec) });
    });
    await sender.setParameters(params);
  }

  /**
   * Adds a screen share as a new source (`<endpoint>-v1`) and announces it (source-add).
   * @param {MediaStreamTrack} track
   */
  startScreenShare(track) {
    return this.#enqueue(async () => {
      const mid = this.model.addLocalSlot('video');
      /** @type {LocalSource & { track: MediaStreamTrack | null, stream: MediaStream }} */
      const local = { mid, name: `${this.options.endpointId}-v1`, videoType: 'desktop', track, stream: new MediaStream() };
      this.#locals.set(mid, local);
      await this.#negotiate();
      const contents = sourcesToJingle(/** @type {string} */ (this.pc.localDescription?.sdp), [local]);
      await this.#sendJingle('source-add', contents);
    });
  }

  /** Stops the screen share: source-remove, then the m-line goes inactive. */
  stopScreenShare() {
    return this.#enqueue(async () => {
      const local = [...this.#locals.values()].find((l) => l.videoType === 'desktop');
      if (!local) return;
      const contents = sourcesToJingle(/** @type {string} */ (this.pc.localDescription?.sdp), [local]);
      this.#locals.delete(local.mid);
      this.model.closeLocalSlot(local.mid);
      await this.pc.getTransceivers().find((t) => t.mid === local.mid)?.sender.replaceTrack(null);
      await this.#negotiate();
      await this.#sendJingle('source-remove', contents);
    });
  }

  /** Closes the PeerConnection; sends session-terminate unless the focus ended it. */
  close({ notify = true } = {}) {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#candidateTimer);
    if (notify && this.options.xmpp.connected) {
      const reason = xml('reason', {}, [xml('success')]);
      this.#sendJingle('session-terminate', [reason]).catch(() => undefined);
    }
    this.pc.close();
  }

  /**
   * Audio level (0..1, RMS) of each remote endpoint and of the local microphone since the
   * previous call, from the stats' audio energy totals: an instantaneous level (RTP
   * sources, `media-source.audioLevel`) misses a short sound between two polls.
   * @returns {Promise<{ remote: Map<string, number>, local: number }>}
   */
  async audioLevels() {
    /** @type {Map<string, number>} */
    const remote = new Map();
    let local = 0;
    const stats = await this.pc.getStats().catch(() => undefined);
    stats?.forEach((s) => {
      const isRemote = s.type === 'inbound-rtp' && s.kind === 'audio';
      const isLocal = s.type === 'media-source' && s.kind === 'audio';
      if (!isRemote && !isLocal) return;
      const level = this.#levelSinceLastPoll(s.id, s.totalAudioEnergy, s.totalSamplesDuration);
      if (isLocal) {
        local = Math.max(local, level);
        return;
      }
      const slot = this.model.slot(s.mid ?? '');
      if (slot?.role !== 'remote' || !slot.source) return;
      remote.set(slot.source.owner, Math.max(level, remote.get(slot.source.owner) ?? 0));
    });
    return { remote, local };
  }

  /**
   * @param {string} id stats object id
   * @param {number | undefined} energy its totalAudioEnergy
   * @param {number | undefined} duration its totalSamplesDuration (s)
   */
  #levelSinceLastPoll(id, energy, duration) {
    const previous = this.#audioEnergy.get(id);
    if (energy === undefined || duration === undefined) return 0;
    this.#audioEnergy.set(id, { energy, duration });
    const elapsed = previous ? duration - previous.duration : 0;
    return previous && elapsed > 0 ? Math.sqrt(Math.max(0, energy - previous.energy) / elapsed) : 0;
  }

  /** @template T @param {() => Promise<T>} task @returns {Promise<T>} */
  #enqueue(task) {
    const run = this.#queue.then(() => (this.#closed ? undefined : task()));
    this.#queue = run.catch((err) => console.error('Jingle session task failed', err));
    return /** @type {Promise<T>} */ (run);
  }

  /** One offer/answer round from the current model. */
  async #negotiate() {
    await this.pc.setRemoteDescription({ type: 'offer', sdp: this.model.toSdp() });
    for (const t of this.pc.getTransceivers()) {
      const slot = this.model.slot(t.mid ?? '');
      if (!slot || t.currentDirection === 'stopped') continue;
      const local = this.#locals.get(slot.mid);
      if (slot.role === 'main') {
        t.direction = 'sendrecv';
        if (slot.kind === 'video') this.#preferCodecs(t);
      } else if (slot.role === 'local') {
        t.direction = local ? 'sendonly' : 'inactive';
      } else if (slot.role === 'spare') {
        t.direction = 'recvonly';
      } else {
        t.direction = slot.direction === 'sendonly' ? 'recvonly' : 'inactive';
      }
      if (local) {
        if (t.sender.track !== local.track) await t.sender.replaceTrack(local.track);
        t.sender.setStreams(local.stream);
      }
    }
    const answer = await this.pc.createAnswer();
    let sdp = answer.sdp ?? '';
    const cameraMid = this.model.slots.find((s) => s.role === 'main' && s.kind === 'video')?.mid;
    if (this.#simulcast && cameraMid !== undefined) sdp = mungeSimulcast(sdp, cameraMid, this.#simulcastLayouts);
    await this.pc.setLocalDescription({ type: 'answer', sdp });
    await this.#applyCameraEncodings();
  }

  /**
   * Orders the camera m-line's codecs: the send codec, then our preference order, then the
   * rest, so that the answer starts with what we send.
   * @param {RTCRtpTransceiver} transceiver
   */
  #preferCodecs(transceiver) {
    const capabilities = RTCRtpReceiver.getCapabilities('video')?.codecs ?? [];
    if (capabilities.length === 0 || !transceiver.setCodecPreferences) return;
    transceiver.setCodecPreferences(orderCapabilities(capabilities, [this.#sendCodec, ...this.options.codecs]));
  }

  /** Whether Chrome turned the munged SIM group into three encodings on the camera. */
  #simulcastHonoured() {
    const cameraMid = this.model.slots.find((s) => s.role === 'main' && s.kind === 'video')?.mid;
    const sender = this.pc.getTransceivers().find((t) => t.mid === cameraMid)?.sender;
    return (sender?.getParameters().encodings.length ?? 0) >= SIMULCAST_LAYERS;
  }

  /** @param {RTCIceCandidate} candidate */
  #queueCandidate(candidate) {
    this.#pendingCandidates.push(candidate);
    if (!this.#accepted) return;
    clearTimeout(this.#candidateTimer);
    this.#candidateTimer = setTimeout(() => this.#flushCandidates(), CANDIDATE_BATCH_MS);
  }

  /** Trickles gathered candidates to the focus in one transport-info. */
  #flushCandidates() {
    const batch = this.#pendingCandidates.splice(0);
    const parsed = batch.map((c) => candidateFromSdp(c.candidate)).filter((c) => !!c);
    if (parsed.length === 0 || this.#closed) return;
    const local = this.pc.localDescription?.sdp ?? '';
    const ufrag = /a=ice-ufrag:(.*)/.exec(local)?.[1]?.trim();
    const pwd = /a=ice-pwd:(.*)/.exec(local)?.[1]?.trim();
    const transport = xml('transport', { xmlns: NS.ice, ufrag, pwd });
    parsed.forEach((c, i) => transport.append(candidateToXml(c, `t${Date.now().toString(36)}${i}`)));
    const content = xml('content', { creator: 'responder', name: 'audio' }, [transport]);
    this.#sendJingle('transport-info', [content]).catch((err) => console.warn('transport-info failed', err));
  }

  /**
   * @param {string} action
   * @param {XmlElement[]} children
   * @param {Record<string, string>} [extra] more `jingle` attributes
   */
  async #sendJingle(action, children, extra = {}) {
    const jingle = xml('jingle', { xmlns: NS.jingle, action, sid: this.sid, initiator: this.initiator, ...extra }, children);
    await this.options.xmpp.request(xml('iq', { type: 'set', to: this.options.focusJid }, [jingle]));
  }
}
