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
import { readOccupantPresence } from './presence.js';
import { JingleSession } from './jingle-session.js';
import { NS, XmlElement, xml } from './xml.js';
import { AuthError, IqError, XmppConnection, errorCondition } from './xmpp.js';

/**
 * @typedef {object} ServerConfig the fields of `config.js` the protocol needs
 * @property {{ domain: string, muc: string, focus?: string, anonymousdomain?: string }} hosts
 * @property {string} websocket
 * @property {string} [focusUserJid]
 * @property {boolean} [disableSimulcast]
 * @property {string} [token] a Jitsi token: sent as `?token=` on the WebSocket URL, as
 *   lib-jitsi-meet does
 * @property {{ codecPreferenceOrder?: string[] }} [videoQuality]
 * @property {{ user: string, password: string }} [credentials] log in with a user name and
 *   password on the main domain
 * @property {boolean} [guest] log in anonymously at `hosts.anonymousdomain` (a secure domain's
 *   guests), and wait for a host
 */

/**
 * @typedef {object} Participant
 * @property {string} id endpoint id (MUC nick)
 * @property {string} displayName
 * @property {string} role
 * @property {Record<string, { muted?: boolean, videoType?: string }>} sources SourceInfo
 * @property {string[]} codecs the video codecs it can use, preferred first
 * @property {import('./presence.js').OccupantPresence['profile']} profile e-mail, avatar, raised hand
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
 * @property {boolean} waiting-for-host whether the focus keeps us waiting until a host is in
 * @property {string} subject the room's subject (MUC `<subject>`)
 * @property {string} role-changed our own MUC role changed (e.g. the focus made us moderator)
 * @property {string} kicked a moderator removed this participant (endpoint id; ours too)
 * @property {'audio' | 'video'} muted-remotely a moderator muted us (the focus's mute IQ)
 */

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
/** How often a guest asks again while waiting for the host (lib-jitsi-meet's 5 s). */
const WAIT_FOR_HOST_MS = 5000;
const MAX_SUBJECT = 1000;

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
  /** What a moderator muted (the bridge drops it) and we have not unmuted since. @type {Set<'audio' | 'video'>} */
  #forceMuted = new Set();
  /** The video codec we send (codecs.js `sendCodec`). */
  #sendCodec = 'vp8';
  /** Our e-mail, avatar URL and raised hand, published in presence. */
  #profile = { email: '', avatarUrl: '', raisedHand: 0 };
  /** The room's password, sent with the join (a password-protected room). */
  password = '';
  /** Our MUC role (`moderator` once the focus grants it). */
  role = 'participant';

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
    const domain = config.guest && config.hosts.anonymousdomain ? config.hosts.anonymousdomain : config.hosts.domain;
    this.xmpp = new XmppConnection(`${config.websocket}?room=${encodeURIComponent(this.room)}${token}`, domain, config.credentials);
    this.xmpp.on('presence', (p) => this.#onPresence(p));
    this.xmpp.on('message', (m) => this.#onMessage(m));
    this.xmpp.on('disconnected', ({ reason }) => this.#fail(reason));
    this.xmpp.onIq(NS.jingle, (iq) => this.#onJingle(iq));
    for (const [kind, ns] of /** @type {const} */ ([['audio', NS.muteAudio], ['video', NS.muteVideo]])) {
      this.xmpp.onIq(ns, (iq) => {
        if (iq.attr('from') !== this.#focusMucJid) throw new IqError('not-authorized');
        if (iq.children[0]?.text !== 'true') return undefined;
        this.#forceMuted.add(kind);
        this.emit('muted-remotely', kind);
        return undefined;
      });
    }
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

  /** The focus as an occupant of the room: Jingle and mute IQs come from it. */
  get #focusMucJid() {
    return `${this.roomJid}/focus`;
  }

  get ownJid() {
    return `${this.roomJid}/${this.endpointId}`;
  }

  /**
   * The focus must have the room ready before we join (Jitsi's conference request). On a
   * secure domain it answers a guest `not-authorized` until a host opened the room: then
   * we wait and ask again every 5 s, as lib-jitsi-meet does.
   */
  async #requestConference() {
    const focus = this.config.hosts.focus ?? `focus.${this.config.hosts.domain}`;
    let delay = 1000;
    let waiting = false;
    for (let attempt = 0; !this.#left; attempt++) {
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
        if (condition !== 'not-authorized') throw new Error(`the conference service refused the room (${condition})`);
        if (!waiting) this.emit('waiting-for-host', (waiting = true));
        await new Promise((r) => setTimeout(r, WAIT_FOR_HOST_MS));
        continue;
      }
      if (waiting) this.emit('waiting-for-host', (waiting = false));
      const conference = reply.child('conference', NS.focus);
      const focusJid = conference?.attr('focusjid') ?? this.config.focusUserJid;
      if (focusJid) this.#focusJid = focusJid;
      if (conference?.attr('ready') === 'true') return;
      if (attempt >= CONFERENCE_RETRIES) throw new Error('the conference did not become ready');
      await new Promise((r) => setTimeout(r, delay));
      delay *= 2;
    }
    throw new Error('left while waiting for the conference');
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
          const mismatch = p.child('error')?.child('room-mismatch', 'http://jitsi.org/jitmeet');
          const condition = errorCondition(p);
          const error = mismatch
            ? new AuthError('room-mismatch', p.child('error')?.child('text')?.text ?? '')
            : new Error(`cannot join the room (${condition})`);
          // A password-protected room refuses a join without (or with a wrong) password.
          if (!mismatch && condition === 'not-authorized') error.name = 'PasswordRequired';
          reject(error);
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
    this.role = self.child('x', NS.mucUser)?.child('item')?.attr('role') ?? 'participant';
    this.emit('joined', { endpointId: this.endpointId, role: this.role });
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
      initial ? xml('x', { xmlns: NS.muc }, this.password ? [xml('password', {}, this.password)] : []) : undefined,
      xml('nick', { xmlns: NS.nick }, this.displayName),
      this.#profile.email ? xml('email', {}, this.#profile.email) : undefined,
      this.#profile.avatarUrl ? xml('avatar-url', {}, this.#profile.avatarUrl) : undefined,
      this.#profile.raisedHand ? xml('jitsi_participant_raisedHand', {}, String(this.#profile.raisedHand)) : undefined,
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
    if (occupant.kicked) this.emit('kicked', nick);
    if (nick === this.endpointId) {
      if (occupant.kicked) this.#fail('removed from the meeting by a moderator');
      else if (this.#joined && occupant.role && occupant.role !== this.role) {
        this.role = occupant.role;
        this.emit('role-changed', occupant.role);
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
      profile: occupant.profile,
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
    const subject = m.child('subject')?.text;
    if (subject !== undefined) this.emit('subject', subject.slice(0, MAX_SUBJECT));
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
        focusJid: this.#focusMucJid,
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
    if (track && this.#forceMuted.delete(kind)) {
      // The bridge stopped forwarding it: lib-jitsi-meet's unmute of our own occupant JID
      // asks the focus to let it through again.
      const ns = kind === 'audio' ? NS.muteAudio : NS.muteVideo;
      const unmute = xml('iq', { type: 'set', to: this.#focusMucJid }, [xml('mute', { xmlns: ns, jid: this.ownJid }, 'false')]);
      await this.xmpp.request(unmute).catch(() => undefined);
    }
    this.#tracks[kind] = track;
    await this.session?.setTrack(kind, track);
    if (kind === 'video') this.bridge?.sendVideoType(`${this.endpointId}-v0`, track ? 'camera' : 'none');
    this.#sendPresence();
  }

  /** @param {MediaStreamTrack} track */
  async startScreenShare(track) {
    if (!this.session) throw new Error('no media session yet');
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

  /**
   * Changes what our presence says about us besides the name.
   * @param {Partial<Participant['profile']>} changes
   */
  setProfile(changes) {
    Object.assign(this.#profile, changes);
    this.#sendPresence();
  }

  get profile() {
    return { ...this.#profile };
  }

  /** Sets the room's subject (the room refuses it unless we are a moderator). @param {string} text */
  setSubject(text) {
    this.xmpp.send(xml('message', { to: this.roomJid, type: 'groupchat' }, [xml('subject', {}, text.slice(0, MAX_SUBJECT))]));
  }

  /** Locks the room with `password` ('' unlocks it): the muc#owner form, for moderators. @param {string} password */
  async lockRoom(password) {
    const field = (/** @type {string} */ v, /** @type {string} */ value, /** @type {string | undefined} */ type = undefined) =>
      xml('field', { var: v, type }, [xml('value', {}, value)]);
    await this.xmpp.request(
      xml('iq', { type: 'set', to: this.roomJid }, [
        xml('query', { xmlns: NS.mucOwner }, [
          xml('x', { xmlns: NS.dataForms, type: 'submit' }, [
            field('FORM_TYPE', 'http://jabber.org/protocol/muc#roomconfig', 'hidden'),
            field('muc#roomconfig_roomsecret', password),
            field('muc#roomconfig_passwordprotectedroom', password ? '1' : '0'),
          ]),
        ]),
      ]),
    );
    this.password = password;
  }

  /** Removes a participant from the room (muc#admin role `none`, for moderators). @param {string} id */
  async kick(id) {
    await this.xmpp.request(
      xml('iq', { type: 'set', to: this.roomJid }, [xml('query', { xmlns: NS.mucAdmin }, [xml('item', { nick: id, role: 'none' })])]),
    );
  }

  /**
   * Asks the focus to mute a participant's microphone or camera (moderators only).
   * @param {string} id @param {'audio' | 'video'} kind
   */
  async muteRemote(id, kind) {
    const ns = kind === 'audio' ? NS.muteAudio : NS.muteVideo;
    await this.xmpp.request(xml('iq', { type: 'set', to: this.#focusMucJid }, [xml('mute', { xmlns: ns, jid: `${this.roomJid}/${id}` }, 'true')]));
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
