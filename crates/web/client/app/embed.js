// @ts-check
/**
 * The meeting side of the iframe API (docs/embedding.md): when the page's hash carries
 * `jitsi_meet_external_api_id=<N>`, it talks Postis with scope `jitsi_meet_external_api_<N>`
 * to the embedding page (`window.parent`), using the channel of `/external_api.js` itself.
 * It sends `ready`, carries out the commands that map to something Convene has, emits the
 * events of Jitsi Meet's `API.js` with the same names and payloads, and answers requests.
 * Commands for features Convene lacks are refused as the stock app refuses a disabled
 * feature: an error in the console, no event. Old copies of the script (2020) speak the
 * same envelope and names, so they work too.
 */

import '../external_api.js';

/** @typedef {import('../lib/conference.js').Conference} Conference */
/** @typedef {import('../lib/conference.js').Participant} Participant */

/**
 * What the room page lets the API read and do (room.js).
 * @typedef {object} RoomControls
 * @property {() => RoomStatus} status
 * @property {(kind: 'audio' | 'video', muted?: boolean) => Promise<void>} setMuted toggles when `muted` is undefined
 * @property {(on?: boolean) => Promise<void>} setScreenShare toggles when `on` is undefined
 * @property {(panel: 'chat' | 'people', open?: boolean) => void} setPanel toggles when `open` is undefined
 * @property {(text: string) => void} sendChat
 * @property {() => void} hangup
 * @property {(name: string) => void} setDisplayName
 * @property {(password: string) => void} joinWithPassword
 * @property {(height: number) => void} setMaxReceiveHeight
 */

/**
 * @typedef {object} RoomStatus
 * @property {boolean} audioMuted @property {boolean} videoMuted
 * @property {boolean} audioAvailable @property {boolean} videoAvailable
 * @property {boolean} sharing @property {boolean} chatOpen @property {boolean} peopleOpen
 * @property {number} unread @property {string} displayName @property {boolean} startSilent
 * @property {string | undefined} micId @property {string | undefined} camId the devices in use
 */

/** The longest argument list and text a command may bring. */
const MAX_ARGS = 8;
const MAX_TEXT = 10_000;

/** Commands the stock app has and Convene does not: refused with the stock app's log line. */
const UNSUPPORTED = new Set([
  'add-breakout-room', 'answer-knocking-participant', 'approve-video', 'ask-to-unmute', 'auto-assign-to-breakout-rooms',
  'cancel-private-chat', 'close-breakout-room', 'end-conference', 'grant-moderator', 'grant-recording-consent',
  'hide-notification', 'hide-pip', 'initiate-private-chat', 'join-breakout-room', 'local-subject', 'overwrite-config',
  'overwrite-names', 'pin-participant', 'reject-participant', 'remove-breakout-room', 'resize-film-strip',
  'resize-large-video', 'send-camera-facing-mode-message', 'send-endpoint-text-message', 'send-participant-to-room',
  'send-tones', 'set-assumed-bandwidth-bps', 'set-audio-only', 'set-blurred-background', 'set-follow-me',
  'set-large-video-participant', 'set-media-encryption-key', 'set-noise-suppression-enabled',
  'set-participant-volume', 'set-subtitles', 'set-virtual-background', 'show-notification', 'show-pip',
  'start-recording', 'start-share-video', 'stop-recording', 'stop-share-video', 'submit-feedback', 'toggle-camera',
  'toggle-camera-mirror', 'toggle-e2ee', 'toggle-lobby', 'toggle-moderation', 'toggle-noise-suppression',
  'toggle-subtitles', 'toggle-virtual-background', 'toggle-whiteboard',
]);

/** @param {unknown} v @returns {string} */
const text = (v) => (typeof v === 'string' ? v.slice(0, MAX_TEXT) : '');

export class EmbedApi {
  /** @type {Conference | undefined} */
  #conference;
  /** What we last told the host about each participant (to notice changes). @type {Map<string, Participant>} */
  #seen = new Map();
  #role = 'participant';
  /** A subject asked for before we could set it (sent once we are a moderator). */
  #pendingSubject = '';
  #passwordRequired = false;
  #transport;

  /**
   * @param {number} apiId @param {string} room @param {RoomControls} controls
   * @param {{ subject?: string }} config
   */
  constructor(apiId, room, controls, config) {
    this.room = room;
    this.controls = controls;
    this.#pendingSubject = config.subject ?? '';
    const { Postis, Transport } = globalThis.JitsiMeetExternalAPI;
    const parent = window.opener ?? window.parent;
    this.#transport = new Transport(new Postis({ target: parent, source: parent, scope: `jitsi_meet_external_api_${apiId}` }));
    this.#transport.onEvent = (data) => this.#command(data);
    this.#transport.onRequest = (data) => this.#request(data);
    this.notify('ready', {});
  }

  /**
   * Sends an event to the embedding page.
   * @param {string} name wire name @param {Record<string, unknown>} data
   */
  notify(name, data) {
    this.#transport.sendEvent({ name, ...data });
  }

  get #selfId() {
    return this.#conference?.endpointId ?? '';
  }

  /** The password the room asked for is wanted from the host. */
  passwordRequired() {
    this.#passwordRequired = true;
    this.notify('password-required', {});
  }

  /**
   * Follows one join of the room: its participants, chat, speaker and subject.
   * @param {Conference} conference
   */
  attach(conference) {
    this.#conference = conference;
    this.#seen.clear();
    conference.on('joined', ({ endpointId, role }) => {
      this.#passwordRequired = false;
      const { displayName } = this.controls.status();
      const { email, avatarUrl } = conference.profile;
      this.notify('video-conference-joined', {
        roomName: this.room, id: endpointId, displayName, formattedDisplayName: displayName,
        avatarURL: avatarUrl, email, breakoutRoom: false, visitor: false,
      });
      this.#setRole(endpointId, role);
    });
    conference.on('participant-joined', (p) => {
      this.#seen.set(p.id, p);
      this.notify('participant-joined', { id: p.id, displayName: p.displayName, formattedDisplayName: p.displayName });
      if (p.role === 'moderator') this.notify('participant-role-changed', { id: p.id, role: p.role });
      if (p.profile.raisedHand) this.notify('raise-hand-updated', { id: p.id, handRaised: p.profile.raisedHand });
    });
    conference.on('participant-updated', (p) => this.#updated(p));
    conference.on('participant-left', (id) => {
      this.#seen.delete(id);
      this.notify('participant-left', { id });
    });
    conference.on('chat', (m) => {
      if (m.self || m.history) return;
      this.notify('incoming-message', { from: m.from, nick: m.displayName, message: m.text, privateMessage: false, stamp: new Date(m.timestamp).toISOString() });
    });
    conference.on('role-changed', (role) => this.#setRole(conference.endpointId, role));
    conference.on('dominant-speaker', (id) => this.notify('dominant-speaker-changed', { id }));
    conference.on('subject', (subject) => this.notify('subject-change', { subject }));
    conference.on('muted-remotely', (kind) => this.notify('participant-muted', { id: conference.endpointId, isMuted: true, mediaType: kind }));
  }

  /** @param {string} id @param {string} role */
  #setRole(id, role) {
    const was = this.#role;
    this.#role = role;
    if (role !== was && (role === 'moderator' || was === 'moderator')) this.notify('participant-role-changed', { id, role });
    if (role !== 'moderator') return;
    if (this.#pendingSubject) this.#conference?.setSubject(this.#pendingSubject);
    this.#pendingSubject = '';
  }

  /** Tells the host what changed about a participant. @param {Participant} p */
  #updated(p) {
    const before = this.#seen.get(p.id);
    this.#seen.set(p.id, p);
    if (!before) return;
    if (before.displayName !== p.displayName) {
      this.notify('display-name-change', { id: p.id, displayname: p.displayName, formattedDisplayName: p.displayName });
    }
    if (before.profile.email !== p.profile.email) this.notify('email-change', { id: p.id, email: p.profile.email });
    if (before.profile.avatarUrl !== p.profile.avatarUrl) this.notify('avatar-changed', { id: p.id, avatarURL: p.profile.avatarUrl });
    if (before.profile.raisedHand !== p.profile.raisedHand) this.notify('raise-hand-updated', { id: p.id, handRaised: p.profile.raisedHand });
    if (before.role !== p.role) this.notify('participant-role-changed', { id: p.id, role: p.role });
  }

  /** A command from the host: `{name, data: [args]}`. @param {Record<string, unknown>} message */
  async #command({ name, data }) {
    const args = Array.isArray(data) ? data.slice(0, MAX_ARGS) : [];
    const conference = this.#conference;
    const self = this.#selfId;
    try {
      switch (name) {
        case 'display-name': {
          const displayName = text(args[0]).trim().slice(0, 64);
          this.controls.setDisplayName(displayName);
          if (self) this.notify('display-name-change', { id: self, displayname: displayName, formattedDisplayName: displayName });
          return;
        }
        case 'email':
          conference?.setProfile({ email: text(args[0]).slice(0, 254) });
          if (self) this.notify('email-change', { id: self, email: text(args[0]) });
          return;
        case 'avatar-url':
          conference?.setProfile({ avatarUrl: text(args[0]).slice(0, 2048) });
          if (self) this.notify('avatar-changed', { id: self, avatarURL: text(args[0]) });
          return;
        case 'subject':
          // As lib-jitsi-meet: kept until joined, then sent only by a moderator.
          if (conference && this.#role === 'moderator') conference.setSubject(text(args[0]));
          else this.#pendingSubject = text(args[0]);
          return;
        case 'password':
          if (this.#passwordRequired) this.controls.joinWithPassword(text(args[0]));
          else if (conference && this.#role === 'moderator') await conference.lockRoom(text(args[0]));
          else console.error('Missing moderator rights to set the room password');
          return;
        case 'toggle-audio':
          return await this.controls.setMuted('audio');
        case 'toggle-video':
          return await this.controls.setMuted('video');
        case 'toggle-share-screen': {
          const enable = /** @type {{ enable?: unknown } | undefined} */ (args[0])?.enable;
          return await this.controls.setScreenShare(typeof enable === 'boolean' ? enable : undefined);
        }
        case 'toggle-chat':
          return this.controls.setPanel('chat');
        case 'toggle-participants-pane':
          return this.controls.setPanel('people', typeof args[0] === 'boolean' ? args[0] : undefined);
        case 'toggle-tile-view':
        case 'set-tile-view':
          // The grid is Convene's only layout: tile view stays on.
          return this.notify('tile-view-changed', { enabled: true });
        case 'toggle-film-strip':
          // There is no filmstrip beside the grid.
          return this.notify('filmstrip-display-changed', { visible: false });
        case 'toggle-raise-hand': {
          if (!conference) return;
          const handRaised = conference.profile.raisedHand ? 0 : Date.now();
          conference.setProfile({ raisedHand: handRaised });
          return this.notify('raise-hand-updated', { id: self, handRaised });
        }
        case 'send-chat-message':
          if (args[1]) return console.error('Private messages are not available on this server');
          return this.controls.sendChat(text(args[0]));
        case 'video-hangup':
          return this.controls.hangup();
        case 'set-video-quality': {
          const height = Number(args[0]);
          if (!Number.isFinite(height) || height < 0) return console.error('Invalid video quality');
          this.controls.setMaxReceiveHeight(height);
          return this.notify('video-quality-changed', { videoQuality: height });
        }
        case 'kick-participant':
          return await conference?.kick(text(args[0]));
        case 'mute-everyone': {
          const kind = args[0] === 'video' ? 'video' : 'audio';
          await Promise.all([...(conference?.participants.keys() ?? [])].map((id) => conference?.muteRemote(id, kind)));
          return;
        }
        case 'mute-remote-participant': {
          const kind = args[1] === 'video' ? 'video' : 'audio';
          if (args[0] === self) return await this.controls.setMuted(kind, true);
          return await conference?.muteRemote(text(args[0]), kind);
        }
        default:
          if (UNSUPPORTED.has(String(name))) console.error(`${String(name)}: not available on this server`);
          else console.error(`Unknown iframe API command ${String(name).slice(0, 64)}`);
      }
    } catch (err) {
      // A refused moderator action (not a moderator, unknown participant) or a lost connection.
      console.error(`${String(name)} failed`, err);
    }
  }

  /** A request from the host. @param {Record<string, unknown>} data @returns {Promise<unknown>} */
  async #request(data) {
    const s = this.controls.status();
    const conference = this.#conference;
    if (data.type === 'devices') return this.#deviceRequest(data);
    switch (data.name) {
      case 'is-audio-muted': return s.audioMuted;
      case 'is-video-muted': return s.videoMuted;
      case 'is-audio-available': return s.audioAvailable;
      case 'is-video-available': return s.videoAvailable;
      case 'is-audio-disabled': return false;
      case 'is-sharing-screen': return s.sharing;
      case 'is-start-silent': return s.startSilent;
      case 'is-participants-pane-open': return s.peopleOpen;
      case 'is-moderation-on': case 'is-participant-force-muted': case 'get-p2p-status': return false;
      case 'get-content-sharing-participants': {
        const ids = [...(conference?.participants.values() ?? [])].filter((p) => p.sources[`${p.id}-v1`]?.muted === false).map((p) => p.id);
        if (s.sharing && conference) ids.push(conference.endpointId);
        return { sharingParticipantIds: ids };
      }
      case 'rooms-info': {
        const people = [...(conference?.participants.values() ?? [])].map((p) => ({
          jid: `${conference?.roomJid}/${p.id}`, role: p.role, displayName: p.displayName, id: p.id,
          avatarUrl: p.profile.avatarUrl,
        }));
        if (conference?.endpointId) {
          people.unshift({ jid: conference.ownJid, role: this.#role, displayName: s.displayName, id: conference.endpointId, avatarUrl: conference.profile.avatarUrl });
        }
        return { rooms: [{ isMainRoom: true, id: conference?.roomJid ?? '', jid: conference?.roomJid ?? '', participants: people }] };
      }
      case 'list-breakout-rooms': return {};
      case 'session-id': case 'get-livestream-url': case 'get-shared-document-url': return '';
      case 'deployment-info': return {};
      case 'get-custom-avatar-backgrounds': return { avatarBackgrounds: [] };
      default:
        // As the stock app: an error object as the result.
        return { error: 'UnknownRequestError' };
    }
  }

  /** @param {Record<string, unknown>} data */
  async #deviceRequest(data) {
    const devices = await navigator.mediaDevices.enumerateDevices();
    /** @param {MediaDeviceKind} kind */
    const of = (kind) => devices.filter((d) => d.kind === kind).map((d) => ({ deviceId: d.deviceId, groupId: d.groupId, kind: d.kind, label: d.label }));
    switch (data.name) {
      case 'getAvailableDevices':
        return { audioInput: of('audioinput'), audioOutput: of('audiooutput'), videoInput: of('videoinput') };
      case 'getCurrentDevices': {
        const { micId, camId } = this.controls.status();
        const find = (/** @type {MediaDeviceKind} */ kind, /** @type {string | undefined} */ id) => of(kind).find((d) => d.deviceId === id);
        // The page plays through the default output.
        return { audioInput: find('audioinput', micId), audioOutput: of('audiooutput')[0], videoInput: find('videoinput', camId) };
      }
      case 'isDeviceChangeAvailable': case 'isMultipleAudioInputSupported': return false;
      default: return { error: 'UnknownRequestError' };
    }
  }
}
