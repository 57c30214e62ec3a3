// @ts-check
/**
 * A conference as a Jitsi client joins it: XMPP login, the conference request to the
 * focus, the MUC join with our presence (display name, mute state), chat, the Jingle
 * session the focus opens with us, and the bridge channel. One `Conference` is one join;
 * after a lost connection the UI creates a new one.
 */

import { BridgeChannel } from './bridge-channel.js';
import { preferenceOrder, sendCodec } from './codecs.js';
import { Emitter } from './emitter.js';
import { parseJingle } from './jingle.js';
import { readOccupantPresence, readRemoval } from './presence.js';
import { JingleSession } from './jingle-session.js';
import { NS, XmlElement, xml } from './xml.js';
import { IqError, XmppConnection, errorCondition } from './xmpp.js';

/**
 * @typedef {object} ServerConfig the fields of `config.js` the protocol needs
 * @property {{ domain: string, muc: string, focus?: string }} hosts
 * @property {string} websocket
 * @property {string} [focusUserJid]
 * @property {boolean} [disableSimulcast]
 * @property {string} [token] a Jitsi token: sent as `?token=` on the WebSocket URL, as
 *   lib-jitsi-meet does
 * @property {{ codecPreferenceOrder?: string[] }} [videoQuality]
 */

/**
 * @typedef {object} Participant
 * @property {string} id endpoint id (MUC nick)
 * @property {string} displayName
 * @property {string} role
 * @property {Record<string, { muted?: boolean, videoType?: string }>} sources SourceInfo
 * @property {string[]} codecs the video codecs it can use, preferred first
 */

/**
 * @typedef {object} ChatMessage
 * @property {string} from endpoint id
 * @property {string} displayName
 * @property {string} text
 * @property {boolean} self
 * @property {boolean} history delivered from the room's history
 * @property {number} timestamp
 */

/**
 * @typedef {object} ConferenceEvents
 * @property {{ endpointId: string, role: string }} joined
 * @property {Participant} participant-joined
 * @property {Participant} participant-updated
 * @property {string} participant-left endpoint id
 * @property {{ endpointId: string, sourceName: string, kind: 'audio' | 'video', videoType: string, track: MediaStreamTrack }} track-added
 * @property {string} track-removed source name
 * @property {ChatMessage} chat
 * @property {string} dominant-speaker endpoint id
 * @property {Set<string>} forwarded-sources
 * @property {{ reason: string }} disconnected the connection or the conference is lost
 * @property {JingleSession} media-session a new media session (PeerConnection) started
 * @property {boolean} simulcast whether our camera sends simulcast layers
 * @property {{ from: string, reaction: string }} reaction an emoji reaction (Jitsi's `endpoint-reaction`)
 * @property {boolean} media-connected whether the media path to the bridge is up (ICE)
 * @property {{ kind: MuteKind, actor: string }} muted-by-moderator a moderator muted our `kind`;
 *   the bridge forwards none of it until we unmute ourselves (`setTrack`, `startScreenShare`)
 * @property {{ kind: 'kicked' | 'ended', actor?: string, reason?: string }} removed a moderator
 *   removed us, or ended the meeting for all; we left (no reconnecting)
 */

/** @typedef {'audio' | 'video' | 'desktop'} MuteKind */

/** The remote-mute namespace of each kind (`<mute xmlns="…">` from the focus). */
const MUTE_NS = /** @type {const} */ ([
  ['audio', NS.muteAudio],
  ['video', NS.muteVideo],
  ['desktop', NS.muteDesktop],
]);

const MAX_CHAT_LENGTH = 10_000;
/** Jitsi Meet's reaction names; anything else from the bridge channel is ignored. */
export const REACTIONS = new Map([
  ['like', '👍'],
  ['clap', '👏'],
  ['laugh', '😂'],
  ['surprised', '😮'],
  ['love', '❤️'],
]);
const CONFERENCE_RETRIES = 6;

/** @extends {Emitter<ConferenceEvents>} */
export class Conference extends Emitter {
  /** @type {Map<string, Participant>} */
  participants = new Map();
  /** @type {JingleSession | undefined} */
  session;
  /** @type {BridgeChannel | undefined} */
  bridge;
  endpointId = '';
  #focusJid = '';
  #joined = false;
  #left = false;
  /** @type {{ audio: MediaStreamTrack | null, video: MediaStreamTrack | null }} */
  #tracks = { audio: null, video: null };
  #screenSharing = false;
  /** What a moderator muted and we have not unmuted since. @type {Set<MuteKind>} */
  #forceMuted = new Set();
  /** The video codec we send (codecs.js `sendCodec`). */
  #sendCodec = 'vp8';

  /**
   * @param {ServerConfig} config
   * @param {string} room room name (the MUC node part, lower case)
   * @param {string} displayName
   */
  constructor(config, room, displayName) {
    super();
    this.config = config;
    this.room = room.toLowerCase();
    this.roomJid = `${this.room}@${config.hosts.muc}`;
    this.displayName = displayName;
    /** Our video codec preference order, published in presence. */
    this.codecs = preferenceOrder(config.videoQuality?.codecPreferenceOrder, browserVideoCodecs());
    this.#sendCodec = this.codecs[0] ?? 'vp8';
    const token = config.token ? `&token=${encodeURIComponent(config.token)}` : '';
    this.xmpp = new XmppConnection(`${config.websocket}?room=${encodeURIComponent(this.room)}${token}`, config.hosts.domain);
    this.xmpp.on('presence', (p) => this.#onPresence(p));
    this.xmpp.on('message', (m) => this.#onMessage(m));
    this.xmpp.on('disconnected', ({ reason }) => this.#fail(reason));
    this.xmpp.onIq(NS.jingle, (iq) => this.#onJingle(iq));
    for (const [kind, ns] of MUTE_NS) this.xmpp.onIq(ns, (iq) => this.#onMuted(kind, iq));
  }

  /**
   * The focus tells us a moderator muted our `kind` (`<mute>true</mute>` with the actor).
   * @param {MuteKind} kind @param {XmlElement} iq
   */
  #onMuted(kind, iq) {
    if (iq.attr('from') !== `${this.roomJid}/focus`) throw new IqError('not-authorized');
    const mute = iq.children[0];
    if (mute?.text.trim() !== 'true') return;
    this.#forceMuted.add(kind);
    const actor = (mute.attr('actor') ?? '').slice(this.roomJid.length + 1);
    this.emit('muted-by-moderator', { kind, actor });
  }

  /**
   * Before sending `kind` again after a moderator muted it: asks the focus to let the
   * bridge forward it (what lib-jitsi-meet sends: an unmute of our own occupant JID).
   * @param {MuteKind} kind
   */
  async #unmuteForced(kind) {
    if (!this.#forceMuted.delete(kind)) return;
    const ns = /** @type {string} */ (MUTE_NS.find(([k]) => k === kind)?.[1]);
    const iq = xml('iq', { type: 'set', to: `${this.roomJid}/focus` }, [xml('mute', { xmlns: ns, jid: this.ownJid }, 'false')]);
    await this.xmpp.request(iq).catch(() => undefined);
  }

  /**
   * Connects, asks the focus for the room and joins it.
   * @param {{ audio: MediaStreamTrack | null, video: MediaStreamTrack | null }} tracks
   */
  async join(tracks) {
    this.#tracks = { ...tracks };
    const jid = await this.xmpp.connect();
    this.endpointId = endpointIdFromJid(jid);
    await this.#requestConference();
    await this.#joinRoom();
  }

  get ownJid() {
    return `${this.roomJid}/${this.endpointId}`;
  }

  /** The focus must have the room ready before we join (Jitsi's conference request). */
  async #requestConference() {
    const focus = this.config.hosts.focus ?? `focus.${this.config.hosts.domain}`;
    let delay = 1000;
    for (let attempt = 0; ; attempt++) {
      const iq = xml('iq', { type: 'set', to: focus }, [
        xml('conference', { xmlns: NS.focus, room: this.roomJid, 'machine-uid': machineUid() }, [
          xml('property', { name: 'rtcstatsEnabled', value: 'false' }),
        ]),
      ]);
      let reply;
      try {
        reply = await this.xmpp.request(iq);
      } catch (err) {
        const condition = err instanceof IqError ? err.condition : String(err);
        throw new Error(`the conference service refused the room (${condition})`);
      }
      const conference = reply.child('conference', NS.focus);
      const focusJid = conference?.attr('focusjid') ?? this.config.focusUserJid;
      if (focusJid) this.#focusJid = focusJid;
      if (conference?.attr('ready') === 'true') return;
      if (attempt >= CONFERENCE_RETRIES) throw new Error('the conference did not become ready');
      await new Promise((r) => setTimeout(r, delay));
      delay *= 2;
    }
  }

  /** Sends the join presence and waits for our own presence back (status 110). */
  async #joinRoom() {
    const joined = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the room did not answer the join')), 15_000);
      const off = this.xmpp.on('presence', (p) => {
        const from = p.attr('from') ?? '';
        if (from !== this.ownJid) return;
        if (p.attr('type') === 'error') {
          clearTimeout(timer);
          off();
          reject(new Error(`cannot join the room (${errorCondition(p)})`));
        } else if (p.attr('type') !== 'unavailable') {
          clearTimeout(timer);
          off();
          resolve(p);
        }
      });
    });
    this.xmpp.send(this.#presence(true));
    const self = /** @type {XmlElement} */ (await joined);
    this.#joined = true;
    const role = self.child('x', NS.mucUser)?.child('item')?.attr('role') ?? 'participant';
    this.emit('joined', { endpointId: this.endpointId, role });
  }

  /** @param {boolean} [initial] the first presence carries the MUC join element */
  #presence(initial = false) {
    const ep = this.endpointId;
    /** @type {Record<string, { muted: boolean, videoType?: string }>} */
    const sources = {
      [`${ep}-a0`]: { muted: !this.#tracks.audio },
      [`${ep}-v0`]: { muted: !this.#tracks.video },
    };
    if (this.#screenSharing) sources[`${ep}-v1`] = { muted: false, videoType: 'desktop' };
    return xml('presence', { to: this.ownJid }, [
      initial ? xml('x', { xmlns: NS.muc }) : undefined,
      xml('nick', { xmlns: NS.nick }, this.displayName),
      xml('SourceInfo', {}, JSON.stringify(sources)),
      xml('jitsi_participant_codecList', {}, this.codecs.join(',')),
      xml('audiomuted', {}, String(!this.#tracks.audio)),
      xml('videomuted', {}, String(!this.#tracks.video)),
    ]);
  }

  #sendPresence() {
    if (this.#joined && this.xmpp.connected) this.xmpp.send(this.#presence());
  }

  /** @param {XmlElement} p */
  #onPresence(p) {
    const occupant = readOccupantPresence(p, this.roomJid, this.#focusJid);
    if (!occupant) return;
    if (occupant.isFocus) {
      if (occupant.unavailable && this.#joined) this.#fail('the conference focus left');
      return;
    }
    const { nick } = occupant;
    if (nick === this.endpointId) {
      const removal = readRemoval(p);
      if (removal && this.#joined && !this.#left) {
        this.leave();
        this.emit('removed', removal);
      }
      return;
    }
    if (occupant.unavailable) {
      if (this.participants.delete(nick)) this.emit('participant-left', nick);
      this.#chooseSendCodec();
      return;
    }
    const known = this.participants.get(nick);
    /** @type {Participant} */
    const participant = {
      id: nick,
      displayName: occupant.displayName ?? known?.displayName ?? '',
      role: occupant.role ?? known?.role ?? 'participant',
      sources: occupant.sources ?? known?.sources ?? {},
      codecs: occupant.codecs,
    };
    this.participants.set(nick, participant);
    this.emit(known ? 'participant-updated' : 'participant-joined', participant);
    this.#chooseSendCodec();
  }

  /** Sends the first codec of ours that everyone else can use (codecs.js `sendCodec`). */
  #chooseSendCodec() {
    const codec = sendCodec(this.codecs, [...this.participants.values()].map((p) => p.codecs));
    if (codec === this.#sendCodec) return;
    this.#sendCodec = codec;
    this.session?.setSendCodec(codec);
  }

  /** @param {XmlElement} m */
  #onMessage(m) {
    const from = m.attr('from') ?? '';
    if (m.attr('type') !== 'groupchat' || !from.startsWith(`${this.roomJid}/`)) return;
    const text = m.child('body')?.text;
    if (!text) return;
    const nick = from.slice(this.roomJid.length + 1);
    const stamp = m.child('delay', NS.delay)?.attr('stamp');
    this.emit('chat', {
      from: nick,
      displayName: this.participants.get(nick)?.displayName || m.child('nick', NS.nick)?.text || nick,
      text: text.slice(0, MAX_CHAT_LENGTH),
      self: nick === this.endpointId,
      history: !!stamp,
      timestamp: stamp ? Date.parse(stamp) || Date.now() : Date.now(),
    });
  }

  /**
   * Jingle from the focus: ack at once, then act on it in order.
   * @param {XmlElement} iq
   */
  #onJingle(iq) {
    if (iq.attr('from') !== `${this.roomJid}/focus`) throw new IqError('not-authorized');
    const jingle = /** @type {XmlElement} */ (iq.child('jingle', NS.jingle));
    const action = jingle.attr('action');
    const sid = jingle.attr('sid') ?? '';
    if (action === 'session-initiate') {
      if (this.session?.sid === sid) throw new IqError('service-unavailable');
      this.#startSession(sid, jingle);
      return undefined;
    }
    if (!this.session || this.session.sid !== sid) throw new IqError('item-not-found');
    const session = this.session;
    switch (action) {
      case 'source-add':
        session.sourceAdd(jingle);
        break;
      case 'source-remove':
        session.sourceRemove(jingle);
        break;
      case 'transport-info':
        session.transportInfo(jingle);
        break;
      case 'session-terminate':
        this.#endSession(false);
        break;
      default:
        throw new IqError('bad-request');
    }
    return undefined;
  }

  /** @param {string} sid @param {XmlElement} jingle */
  #startSession(sid, jingle) {
    const offer = parseJingle(jingle); // throws (→ bad-request) on malformed input
    this.#endSession(false);
    const session = new JingleSession(
      {
        xmpp: this.xmpp,
        focusJid: `${this.roomJid}/focus`,
        ownJid: this.ownJid,
        endpointId: this.endpointId,
        simulcast: !this.config.disableSimulcast,
        codecs: this.codecs,
        sendCodec: this.#sendCodec,
        tracks: { audio: this.#tracks.audio ?? undefined, video: this.#tracks.video ?? undefined },
      },
      sid,
      offer,
      `${this.roomJid}/focus`,
    );
    this.session = session;
    session.on('track', ({ source, track }) => {
      this.emit('track-added', {
        endpointId: source.owner,
        sourceName: source.name,
        kind: source.kind,
        videoType: source.videoType ?? 'camera',
        track,
      });
    });
    session.on('source-removed', (source) => this.emit('track-removed', source.name));
    session.on('simulcast', (on) => this.emit('simulcast', on));
    session.on('ice-state', (state) => {
      if (state === 'connected' || state === 'completed') this.emit('media-connected', true);
      else if (state === 'disconnected') this.emit('media-connected', false);
      if (state === 'failed' && this.session === session) this.#fail('the media connection failed');
    });
    this.emit('media-session', session);
    session.start().catch((err) => this.#fail(`media negotiation failed: ${err}`));
    const url = session.webSocketUrls[0];
    if (url) this.#openBridgeChannel(url);
  }

  /** @param {boolean} notify */
  #endSession(notify) {
    this.session?.close({ notify });
    this.session = undefined;
    this.bridge?.close();
    this.bridge = undefined;
  }

  /** @param {string} url */
  #openBridgeChannel(url) {
    const bridge = new BridgeChannel(url);
    this.bridge = bridge;
    bridge.on('dominant-speaker', ({ endpoint }) => this.emit('dominant-speaker', endpoint));
    bridge.on('forwarded-sources', (names) => this.emit('forwarded-sources', new Set(names)));
    bridge.on('endpoint-message', ({ from, payload }) => {
      const reaction = payload.reaction;
      if (payload.name === 'endpoint-reaction' && typeof reaction === 'string' && REACTIONS.has(reaction)) {
        this.emit('reaction', { from, reaction });
      }
    });
    bridge.on('open', (open) => {
      if (!open) return;
      bridge.sendVideoType(`${this.endpointId}-v0`, this.#tracks.video ? 'camera' : 'none');
      if (this.#screenSharing) bridge.sendVideoType(`${this.endpointId}-v1`, 'desktop');
    });
  }

  /**
   * Starts or stops sending our microphone or camera.
   * @param {'audio' | 'video'} kind @param {MediaStreamTrack | null} track null = muted
   */
  async setTrack(kind, track) {
    if (track) await this.#unmuteForced(kind);
    this.#tracks[kind] = track;
    await this.session?.setTrack(kind, track);
    if (kind === 'video') this.bridge?.sendVideoType(`${this.endpointId}-v0`, track ? 'camera' : 'none');
    this.#sendPresence();
  }

  /** @param {MediaStreamTrack} track */
  async startScreenShare(track) {
    if (!this.session) throw new Error('no media session yet');
    await this.#unmuteForced('desktop');
    this.#screenSharing = true;
    await this.session.startScreenShare(track);
    this.bridge?.sendVideoType(`${this.endpointId}-v1`, 'desktop');
    this.#sendPresence();
  }

  async stopScreenShare() {
    if (!this.#screenSharing) return;
    this.#screenSharing = false;
    await this.session?.stopScreenShare();
    this.#sendPresence();
  }

  /** @param {string} text */
  sendChat(text) {
    const body = text.trim().slice(0, MAX_CHAT_LENGTH);
    if (!body) return;
    this.xmpp.send(
      xml('message', { to: this.roomJid, type: 'groupchat', id: crypto.randomUUID() }, [
        xml('body', {}, body),
        xml('nick', { xmlns: NS.nick }, this.displayName),
      ]),
    );
  }

  /**
   * Sends an emoji reaction to everyone over the bridge channel, as Jitsi Meet does.
   * @param {string} reaction one of `REACTIONS`
   */
  sendReaction(reaction) {
    if (!REACTIONS.has(reaction)) return;
    this.bridge?.sendEndpointMessage({ name: 'endpoint-reaction', reaction, timestamp: Date.now() });
  }

  /** @param {string} name */
  setDisplayName(name) {
    this.displayName = name;
    this.#sendPresence();
  }

  /** Leaves the room and closes everything. */
  leave() {
    if (this.#left) return;
    this.#left = true;
    this.#endSession(true);
    if (this.xmpp.connected) {
      try {
        this.xmpp.send(xml('presence', { to: this.ownJid, type: 'unavailable' }));
      } catch {
        // gone already
      }
    }
    this.xmpp.close();
  }

  /** @param {string} reason */
  #fail(reason) {
    if (this.#left) return;
    this.leave();
    this.emit('disconnected', { reason });
  }
}

/**
 * Jitsi's endpoint id: the first 8 characters of the bound JID's node when they are
 * lower-case hex (an anonymous UUID node), else 8 random hex digits.
 * @param {string} jid
 */
export function endpointIdFromJid(jid) {
  const node = jid.split('@')[0] ?? '';
  const head = node.slice(0, 8);
  if (/^[0-9a-f]{8}$/.test(head)) return head;
  return Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A stable per-browser id for the conference request, as Jitsi's `machine-uid`. */
function machineUid() {
  try {
    let uid = localStorage.getItem('convene.machineUid');
    if (!uid) {
      uid = crypto.randomUUID();
      localStorage.setItem('convene.machineUid', uid);
    }
    return uid;
  } catch {
    return crypto.randomUUID();
  }
}

/** The video codecs (Jitsi names) this browser can both send and receive. */
function browserVideoCodecs() {
  const names = (/** @type {'sender' | 'receiver'} */ side) =>
    new Set(
      ((side === 'sender' ? RTCRtpSender : RTCRtpReceiver).getCapabilities?.('video')?.codecs ?? []).map((c) =>
        c.mimeType.toLowerCase().replace(/^video\//, ''),
      ),
    );
  const send = names('sender');
  const receive = names('receiver');
  return [...send].filter((c) => receive.has(c));
}
