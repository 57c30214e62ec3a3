// @ts-check
/**
 * Convene's `JitsiMeetExternalAPI`: embeds a meeting in another site's page, as Jitsi Meet's
 * `external_api.js` does, with the same constructor, iframe URL, postMessage protocol,
 * commands, events and requests (docs/embedding.md). Written for Convene; a classic script
 * (global `JitsiMeetExternalAPI`) with no dependencies.
 *
 * The wire protocol is Postis: every message is a JSON string
 * `{"postis":true,"scope":"jitsi_meet_external_api_<N>","method":…,"params":…}`. Until both
 * sides have seen their own `__ready__` id echoed, only `__ready__` is sent; other messages
 * wait in a buffer. Inside `params` of method `message` are the transport's events,
 * requests and responses. The meeting page uses the same `Postis` and `Transport`
 * (exported as `JitsiMeetExternalAPI.Postis` / `.Transport`).
 */
(function (root) {
  'use strict';

  /** Messages longer than this are dropped unread (a chat message is at most 10 000 characters). */
  const MAX_MESSAGE = 64 * 1024;
  const READY_INTERVAL_MS = 50;
  const READY = '__ready__';

  /**
   * One Postis channel: `scope`-tagged JSON messages to `target`, after the `__ready__`
   * handshake. `allowedOrigin` (the embedding side) drops messages from any other origin;
   * `source` (the meeting side) drops messages from any other window.
   */
  class Postis {
    /**
     * @param {{ target: Window, scope: string, allowedOrigin?: string, source?: Window, listenOn?: Window }} options
     */
    constructor({ target, scope, allowedOrigin, source, listenOn = window }) {
      this.target = target;
      this.scope = scope;
      this.allowedOrigin = allowedOrigin;
      this.source = source;
      this.listenOn = listenOn;
      /** @type {Map<string, ((params: any) => void)[]>} */
      this.listeners = new Map();
      /** @type {{ method: string, params: unknown }[]} */
      this.buffer = [];
      this.isReady = false;
      const id = `${Date.now()}${Math.random().toString(16).slice(2)}`;
      this.onMessage = (/** @type {MessageEvent} */ ev) => this.receive(ev);
      listenOn.addEventListener('message', this.onMessage);
      this.listen(READY, (echoed) => {
        if (echoed !== id) return this.post(READY, echoed);
        clearInterval(this.readyTimer);
        if (this.isReady) return;
        this.isReady = true;
        for (const m of this.buffer.splice(0)) this.post(m.method, m.params);
      });
      this.readyTimer = setInterval(() => this.post(READY, id), READY_INTERVAL_MS);
      this.post(READY, id);
    }

    /** @param {string} method @param {(params: any) => void} fn */
    listen(method, fn) {
      const list = this.listeners.get(method) ?? [];
      list.push(fn);
      this.listeners.set(method, list);
    }

    /** Sends now when ready, else buffers. @param {string} method @param {unknown} params */
    send(method, params) {
      if (this.isReady) this.post(method, params);
      else this.buffer.push({ method, params });
    }

    /** @param {string} method @param {unknown} params */
    post(method, params) {
      try {
        this.target.postMessage(JSON.stringify({ postis: true, scope: this.scope, method, params }), '*');
      } catch {
        // the other window is gone
      }
    }

    /** @param {MessageEvent} ev */
    receive(ev) {
      if (this.allowedOrigin && ev.origin !== this.allowedOrigin) return;
      if (this.source && ev.source !== this.source) return;
      if (typeof ev.data !== 'string' || ev.data.length > MAX_MESSAGE) return;
      let message;
      try {
        message = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!message || message.postis !== true || message.scope !== this.scope || typeof message.method !== 'string') return;
      for (const fn of this.listeners.get(message.method) ?? []) fn(message.params);
    }

    destroy() {
      clearInterval(this.readyTimer);
      this.listenOn.removeEventListener('message', this.onMessage);
      this.listeners.clear();
      this.buffer = [];
    }
  }

  /**
   * Events, requests and responses over a Postis channel (method `message`):
   * `{type:"event",data}`, `{type:"request",id,data}`, `{type:"response",id,result|error}`.
   */
  class Transport {
    /** @param {Postis} postis */
    constructor(postis) {
      this.postis = postis;
      this.nextId = 1;
      /** @type {Map<number, { resolve: (v: unknown) => void, reject: (e: unknown) => void }>} */
      this.pending = new Map();
      /** @type {(data: any) => void} */
      this.onEvent = () => undefined;
      /** @type {(data: any) => unknown} returns the result, or a promise of it; throws to answer with an error */
      this.onRequest = () => {
        throw new Error('UnknownRequestError');
      };
      postis.listen('message', (message) => this.receive(message));
    }

    /** @param {Record<string, unknown>} data */
    sendEvent(data) {
      this.postis.send('message', { type: 'event', data });
    }

    /** @param {Record<string, unknown>} data @returns {Promise<any>} */
    sendRequest(data) {
      const id = this.nextId++;
      this.postis.send('message', { type: 'request', id, data });
      return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    }

    /** @param {any} message */
    async receive(message) {
      if (!message || typeof message !== 'object') return;
      if (message.type === 'event' && message.data && typeof message.data === 'object') {
        this.onEvent(message.data);
      } else if (message.type === 'request' && message.data && typeof message.data === 'object') {
        let answer;
        try {
          answer = { result: await this.onRequest(message.data) };
        } catch (err) {
          answer = { error: err instanceof Error ? err.message : String(err) };
        }
        this.postis.send('message', { type: 'response', id: message.id, ...answer });
      } else if (message.type === 'response') {
        const waiting = this.pending.get(message.id);
        if (!waiting) return;
        this.pending.delete(message.id);
        if (message.result !== undefined) waiting.resolve(message.result);
        else if (message.error !== undefined) waiting.reject(message.error);
        else waiting.reject(new Error('Unexpected response format'));
      }
    }

    dispose() {
      this.postis.destroy();
      for (const { reject } of this.pending.values()) reject(new Error('disposed'));
      this.pending.clear();
    }
  }

  /** camelCase → kebab-case, the rule behind almost every wire name. @param {string} name */
  const kebab = (name) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

  /** The wire names that do not follow `kebab`. */
  const COMMAND_EXCEPTIONS = {
    hangup: 'video-hangup',
    sendCameraFacingMode: 'send-camera-facing-mode-message',
    toggleE2EE: 'toggle-e2ee',
    toggleVirtualBackgroundDialog: 'toggle-virtual-background',
  };
  const COMMAND_NAMES = [
    'addBreakoutRoom', 'answerKnockingParticipant', 'approveVideo', 'askToUnmute', 'autoAssignToBreakoutRooms',
    'avatarUrl', 'cancelPrivateChat', 'closeBreakoutRoom', 'displayName', 'email', 'endConference',
    'grantModerator', 'grantRecordingConsent', 'hangup', 'hideNotification', 'hidePiP', 'initiatePrivateChat',
    'joinBreakoutRoom', 'kickParticipant', 'localSubject', 'muteEveryone', 'muteRemoteParticipant',
    'overwriteConfig', 'overwriteNames', 'password', 'pinParticipant', 'rejectParticipant', 'removeBreakoutRoom',
    'resizeFilmStrip', 'resizeLargeVideo', 'sendCameraFacingMode', 'sendChatMessage', 'sendEndpointTextMessage',
    'sendParticipantToRoom', 'sendTones', 'setAssumedBandwidthBps', 'setAudioOnly', 'setBlurredBackground',
    'setFollowMe', 'setLargeVideoParticipant', 'setMediaEncryptionKey', 'setNoiseSuppressionEnabled',
    'setParticipantVolume', 'setSubtitles', 'setTileView', 'setVideoQuality', 'setVirtualBackground',
    'showNotification', 'showPiP', 'startRecording', 'startShareVideo', 'stopRecording', 'stopShareVideo',
    'subject', 'submitFeedback', 'toggleAudio', 'toggleCamera', 'toggleCameraMirror', 'toggleChat', 'toggleE2EE',
    'toggleFilmStrip', 'toggleLobby', 'toggleModeration', 'toggleNoiseSuppression', 'toggleParticipantsPane',
    'toggleRaiseHand', 'toggleShareScreen', 'toggleSubtitles', 'toggleTileView', 'toggleVideo',
    'toggleVirtualBackgroundDialog', 'toggleWhiteboard',
  ];
  /** @type {Record<string, string>} executeCommand name → wire name */
  const COMMANDS = Object.fromEntries(
    COMMAND_NAMES.map((n) => [n, /** @type {Record<string, string>} */ (COMMAND_EXCEPTIONS)[n] ?? kebab(n)]),
  );

  const EVENT_EXCEPTIONS = { readyToClose: 'video-ready-to-close', participantMenuButtonClick: 'participant-menu-button-clicked' };
  const EVENT_NAMES = [
    'audioAvailabilityChanged', 'audioMuteStatusChanged', 'audioOnlyChanged', 'audioOrVideoSharingToggled',
    'avatarChanged', 'breakoutRoomsUpdated', 'browserSupport', 'cameraError', 'chatUpdated',
    'compressedAudioSharingToggled', 'computePressureChanged', 'conferenceCreatedTimestamp',
    'contentSharingParticipantsChanged', 'customNotificationActionTriggered', 'dataChannelClosed',
    'dataChannelOpened', 'deviceListChanged', 'displayNameChange', 'dominantSpeakerChanged', 'emailChange',
    'endpointTextMessageReceived', 'errorOccurred', 'faceLandmarkDetected', 'feedbackPromptDisplayed',
    'feedbackSubmitted', 'fileDeleted', 'fileUploaded', 'filmstripDisplayChanged', 'incomingMessage',
    'knockingParticipant', 'log', 'micError', 'moderationParticipantApproved', 'moderationParticipantRejected',
    'moderationStatusChanged', 'mouseEnter', 'mouseLeave', 'mouseMove', 'nonParticipantMessageReceived',
    'notificationTriggered', 'outgoingMessage', 'p2pStatusChanged', 'participantJoined', 'participantKickedOut',
    'participantLeft', 'participantMenuButtonClick', 'participantMuted', 'participantRoleChanged',
    'participantsPaneToggled', 'passwordRequired', 'peerConnectionFailure', 'pipEntered', 'pipLeft',
    'prejoinScreenLoaded', 'proxyConnectionEvent', 'raiseHandUpdated', 'readyToClose',
    'recordingConsentDialogOpen', 'recordingLinkAvailable', 'recordingStatusChanged',
    'screenSharingStatusChanged', 'subjectChange', 'suspendDetected', 'tileViewChanged',
    'toolbarButtonClicked', 'toolbarVisibilityChanged', 'transcribingStatusChanged',
    'transcriptionChunkReceived', 'videoAvailabilityChanged', 'videoConferenceJoined', 'videoConferenceLeft',
    'videoMuteStatusChanged', 'videoQualityChanged', 'whiteboardStatusChanged',
  ];
  /** @type {Record<string, string>} wire name → event name */
  const EVENTS = Object.fromEntries(
    EVENT_NAMES.map((n) => [/** @type {Record<string, string>} */ (EVENT_EXCEPTIONS)[n] ?? kebab(n), n]),
  );

  /** Request methods: method name → wire request name. */
  const REQUESTS = {
    isAudioMuted: 'is-audio-muted', isVideoMuted: 'is-video-muted', isAudioAvailable: 'is-audio-available',
    isVideoAvailable: 'is-video-available', isAudioDisabled: 'is-audio-disabled', isSharingScreen: 'is-sharing-screen',
    isStartSilent: 'is-start-silent', isParticipantsPaneOpen: 'is-participants-pane-open', isP2pActive: 'get-p2p-status',
    getContentSharingParticipants: 'get-content-sharing-participants', getLivestreamUrl: 'get-livestream-url',
    getCustomAvatarBackgrounds: 'get-custom-avatar-backgrounds', listBreakoutRooms: 'list-breakout-rooms',
    getRoomsInfo: 'rooms-info', getSharedDocumentUrl: 'get-shared-document-url', getSessionId: 'session-id',
    getDeploymentInfo: 'deployment-info', captureLargeVideoScreenshot: 'capture-largevideo-screenshot',
  };
  /** Device requests (`{type:'devices', name}`) answered by the meeting page. */
  const DEVICE_REQUESTS = ['getAvailableDevices', 'getCurrentDevices', 'isDeviceChangeAvailable', 'isMultipleAudioInputSupported'];

  const HASH_PREFIXES = ['config', 'iceServers', 'interfaceConfig', 'devices', 'userInfo', 'appData'];
  const SIZE = /^\d*\.?\d+(px|em|pt|%|vh|vw|dvh|lvh|svh|dvw|lvw|svw)$/;
  const ALLOW =
    'autoplay; camera; clipboard-write; compute-pressure; display-capture; hid; microphone; screen-wake-lock; speaker-selection';

  /** @param {unknown} value @returns {string | undefined} a CSS size, as Jitsi accepts them */
  function cssSize(value) {
    if (typeof value === 'number') return `${value}px`;
    return typeof value === 'string' && SIZE.test(value) ? value : undefined;
  }

  /**
   * The iframe's URL: `<scheme>://<domain>/<roomName>?jwt=&lang=&release=#jitsi_meet_external_api_id=<N>&jwt="…"&config.<key>=<JSON>…`.
   * @param {string} domain @param {Record<string, any>} o @param {number} id
   */
  function iframeUrl(domain, o, id) {
    let path = `${o.noSSL ? 'http' : 'https'}://${domain}`;
    const room = String(o.roomName ?? '');
    if (room && !path.endsWith(room)) path += `${path.endsWith('/') ? '' : '/'}${room}`;
    const query = new URLSearchParams();
    if (o.jwt) query.set('jwt', o.jwt);
    const lang = o.lang ?? o.configOverwrite?.defaultLanguage;
    if (lang) query.set('lang', lang);
    if (o.release) query.set('release', o.release);
    const hash = [`jitsi_meet_external_api_id=${id}`];
    if (o.jwt) hash.push(`jwt=${JSON.stringify(o.jwt)}`);
    /** @type {Record<string, any>} */
    const groups = {
      config: o.configOverwrite,
      iceServers: o.iceServers,
      interfaceConfig: o.interfaceConfigOverwrite,
      devices: o.devices,
      userInfo: o.userInfo,
      appData: o.appData,
    };
    for (const prefix of HASH_PREFIXES) {
      for (const [key, value] of Object.entries(groups[prefix] ?? {})) {
        if (value !== undefined) hash.push(`${prefix}.${key}=${encodeURIComponent(JSON.stringify(value))}`);
      }
    }
    const search = query.toString();
    return `${path}${search ? `?${search}` : ''}#${hash.join('&')}`;
  }

  /** The pre-2018 positional form `(domain, roomName, width, height, parentNode, …)`. @param {any[]} args */
  function options(args) {
    if (typeof args[0] !== 'string') return args[0] ?? {};
    const [roomName, width, height, parentNode, configOverwrite, interfaceConfigOverwrite, noSSL, jwt, onload] = args;
    return { roomName, width, height, parentNode, configOverwrite, interfaceConfigOverwrite, noSSL, jwt, onload };
  }

  /** A minimal Node-style event emitter, as the upstream API extends one. */
  class Emitter {
    constructor() {
      /** @type {Map<string, Function[]>} */
      this.handlers = new Map();
    }
    /** @param {string} event @param {Function} fn */
    on(event, fn) {
      this.handlers.set(event, [...(this.handlers.get(event) ?? []), fn]);
      return this;
    }
    /** @param {string} event @param {Function} fn */
    off(event, fn) {
      this.handlers.set(event, (this.handlers.get(event) ?? []).filter((f) => f !== fn));
      return this;
    }
    /** @param {string} event @param {Function} fn */
    once(event, fn) {
      const wrapper = (/** @type {unknown[]} */ ...args) => {
        this.off(event, wrapper);
        fn.apply(this, args);
      };
      return this.on(event, wrapper);
    }
    /** @param {string} event @param {unknown[]} args */
    emit(event, ...args) {
      const list = this.handlers.get(event) ?? [];
      for (const fn of list) fn.apply(this, args);
      return list.length > 0;
    }
    /** @param {string} [event] */
    removeAllListeners(event) {
      if (event === undefined) this.handlers.clear();
      else this.handlers.delete(event);
      return this;
    }
    /** @param {string} event @param {Function} fn */
    addListener(event, fn) {
      return this.on(event, fn);
    }
    /** @param {string} event @param {Function} fn */
    removeListener(event, fn) {
      return this.off(event, fn);
    }
    /** @param {string} event @param {Function} fn */
    addEventListener(event, fn) {
      return this.on(event, fn);
    }
    /** @param {string} event @param {Function} fn */
    removeEventListener(event, fn) {
      return this.off(event, fn);
    }
    /** @param {Record<string, Function>} listeners */
    addEventListeners(listeners) {
      for (const [event, fn] of Object.entries(listeners)) this.on(event, fn);
    }
    /** @param {string[]} events */
    removeEventListeners(events) {
      for (const event of events) this.removeAllListeners(event);
    }
  }

  /** Iframes created on this page so far: the `<N>` of each one's ids and scope. */
  let created = 0;

  class JitsiMeetExternalAPI extends Emitter {
    /**
     * @param {string} domain `host[:port][/path]`
     * @param {...any} args the options object (or the legacy positional arguments)
     */
    constructor(domain, ...args) {
      super();
      const o = options(args);
      const id = created++;
      this._url = iframeUrl(domain, o, id);
      this._parentNode = o.parentNode ?? document.body;
      const frame = document.createElement('iframe');
      frame.id = frame.name = `jitsiConferenceFrame${id}`;
      frame.allow = ALLOW;
      frame.setAttribute('allowFullScreen', 'true');
      frame.style.border = '0';
      if (o.sandbox) frame.setAttribute('sandbox', o.sandbox);
      frame.src = this._url;
      this._frame = frame;
      this._setSize(o.height ?? '100%', o.width ?? '100%');
      this._parentNode.appendChild(frame);
      /** @type {Record<string, { displayName?: string, formattedDisplayName?: string, email?: string, avatarURL?: string }>} */
      this._participants = {};
      /** @type {string | undefined} */
      this._myUserID = undefined;
      this._numberOfParticipants = 0;
      this._videoQuality = undefined;
      this._isVisitor = false;
      this._onload = o.onload;
      this._e2eeKey = o.e2eeKey;
      /** @type {Transport} */
      this._transport = new Transport(
        new Postis({
          target: /** @type {Window} */ (frame.contentWindow),
          scope: `jitsi_meet_external_api_${id}`,
          allowedOrigin: new URL(this._url).origin,
        }),
      );
      this._transport.onEvent = (data) => this._onEvent(data);
      this._transport.onRequest = (data) => {
        throw new Error(`unsupported request ${String(data.name)}`);
      };
      if (Array.isArray(o.invitees) && o.invitees.length > 0) this.invite(o.invitees);
    }

    /** @param {string | number} height @param {string | number} width */
    _setSize(height, width) {
      const h = cssSize(height);
      const w = cssSize(width);
      if (h) this._frame.style.height = h;
      if (w) this._frame.style.width = w;
    }

    /** Keeps the local participant list, then emits the event under its API name. @param {Record<string, any>} data */
    _onEvent({ name, ...data }) {
      const who = this._participants[data.id];
      switch (name) {
        case 'ready':
          this._onload?.();
          break;
        case 'video-conference-joined':
          // The local participant is counted like the others.
          this._myUserID = data.id;
          this._isVisitor = !!data.visitor;
          this._joined(data, { avatarURL: data.avatarURL, email: data.email });
          if (this._e2eeKey) this._sendE2eeKey();
          break;
        case 'participant-joined':
          this._joined(data, this._participants[data.id] ?? {});
          break;
        case 'participant-left':
          delete this._participants[data.id];
          this._numberOfParticipants = Object.keys(this._participants).length;
          break;
        case 'video-conference-left':
          this._participants = {};
          this._numberOfParticipants = 0;
          break;
        case 'display-name-change':
          if (who) Object.assign(who, { displayName: data.displayname, formattedDisplayName: data.formattedDisplayName });
          break;
        case 'email-change':
          if (who) who.email = data.email;
          break;
        case 'avatar-changed':
          if (who) who.avatarURL = data.avatarURL;
          break;
        case 'video-quality-changed':
          this._videoQuality = data.videoQuality;
          break;
        case 'local-storage-changed':
          return;
      }
      const event = EVENTS[name];
      if (event) this.emit(event, data);
    }

    /** @param {Record<string, any>} data @param {Record<string, string | undefined>} p */
    _joined(data, p) {
      this._participants[data.id] = Object.assign(p, { displayName: data.displayName, formattedDisplayName: data.formattedDisplayName });
      this._numberOfParticipants = Object.keys(this._participants).length;
    }

    _sendE2eeKey() {
      const bytes = String(this._e2eeKey).match(/../g)?.map((b) => parseInt(b, 16)) ?? [];
      this.executeCommand('setMediaEncryptionKey', JSON.stringify({ exportedKey: bytes, index: 0 }));
    }

    /** @param {string} name @param {...unknown} args */
    executeCommand(name, ...args) {
      const wire = COMMANDS[name];
      if (!wire) {
        console.error('Not supported command name.');
        return;
      }
      this._transport.sendEvent({ name: wire, data: args });
    }

    /** @param {Record<string, unknown>} commands name → its one argument */
    executeCommands(commands) {
      for (const [name, arg] of Object.entries(commands)) this.executeCommand(name, arg);
    }

    /** @param {Record<string, unknown>} data @returns {Promise<any>} */
    _request(data) {
      return this._transport.sendRequest(data);
    }

    /** @param {unknown[]} invitees */
    invite(invitees) {
      return this._request({ name: 'invite', invitees });
    }
    /** @param {'audio' | 'video'} [mediaType] */
    isModerationOn(mediaType) {
      return this._request({ name: 'is-moderation-on', mediaType });
    }
    /** @param {string} participantId @param {'audio' | 'video'} [mediaType] */
    isParticipantForceMuted(participantId, mediaType) {
      return this._request({ name: 'is-participant-force-muted', participantId, mediaType });
    }
    /** @param {string} [cameraFacingMode] @param {string} [descriptionText] @param {string} [titleText] */
    captureCameraPicture(cameraFacingMode, descriptionText, titleText) {
      return this._request({ name: 'capture-camera-picture', cameraFacingMode, descriptionText, titleText });
    }
    /** @param {'audioinput' | 'audiooutput' | 'videoinput'} kind @param {string} label @param {string} [deviceId] */
    _setDevice(kind, label, deviceId) {
      return this._request({ type: 'devices', name: 'setDevice', device: { kind, label, id: deviceId } });
    }
    /** @param {string} label @param {string} [deviceId] */
    setAudioInputDevice(label, deviceId) {
      return this._setDevice('audioinput', label, deviceId);
    }
    /** @param {string} label @param {string} [deviceId] */
    setAudioOutputDevice(label, deviceId) {
      return this._setDevice('audiooutput', label, deviceId);
    }
    /** @param {string} label @param {string} [deviceId] */
    setVideoInputDevice(label, deviceId) {
      return this._setDevice('videoinput', label, deviceId);
    }

    // Wrappers that send one command.
    /** @param {string} [participantId] @param {string} [videoType] */
    pinParticipant(participantId, videoType) {
      this.executeCommand('pinParticipant', participantId, videoType);
    }
    /** @param {string} [participantId] @param {string} [videoType] */
    setLargeVideoParticipant(participantId, videoType) {
      this.executeCommand('setLargeVideoParticipant', participantId, videoType);
    }
    /** @param {number} width @param {number} height */
    resizeLargeVideo(width, height) {
      if (width <= this._frame.clientWidth && height <= this._frame.clientHeight) this.executeCommand('resizeLargeVideo', width, height);
    }
    /** @param {Record<string, unknown>} options */
    startRecording(options) {
      this.executeCommand('startRecording', options);
    }
    /** @param {string} mode @param {boolean} [transcription] */
    stopRecording(mode, transcription) {
      this.executeCommand('stopRecording', mode, transcription);
    }
    /** @param {boolean} enabled */
    toggleE2EE(enabled) {
      this.executeCommand('toggleE2EE', enabled);
    }
    /** @param {boolean} enabled @param {string} [backgroundImage] */
    setVirtualBackground(enabled, backgroundImage) {
      this.executeCommand('setVirtualBackground', enabled, backgroundImage);
    }
    showPiP() {
      this.executeCommand('showPiP');
    }
    hidePiP() {
      this.executeCommand('hidePiP');
    }

    // Local getters: answered from the events seen so far, no message.
    getParticipantsInfo() {
      return Object.entries(this._participants).map(([participantId, p]) => ({ participantId, ...p }));
    }
    /** @param {string} id */
    getDisplayName(id) {
      return this._participants[id]?.displayName;
    }
    /** @param {string} id */
    getEmail(id) {
      return this._participants[id]?.email;
    }
    /** @param {string} id */
    getAvatarURL(id) {
      return this._participants[id]?.avatarURL;
    }
    getNumberOfParticipants() {
      return this._numberOfParticipants;
    }
    getVideoQuality() {
      return this._videoQuality;
    }
    isVisitor() {
      return this._isVisitor;
    }
    getIFrame() {
      return this._frame;
    }
    getSupportedCommands() {
      return Object.keys(COMMANDS);
    }
    getSupportedEvents() {
      return Object.values(EVENTS);
    }
    isDeviceListAvailable() {
      return Promise.resolve(true);
    }

    dispose() {
      this.emit('_willDispose');
      this._transport.dispose();
      this.removeAllListeners();
      this._frame.remove();
    }
  }

  const proto = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (JitsiMeetExternalAPI.prototype));
  for (const [method, name] of Object.entries(REQUESTS)) {
    proto[method] = /** @this {JitsiMeetExternalAPI} */ function () {
      return this._request({ name });
    };
  }
  for (const name of DEVICE_REQUESTS) {
    proto[name] = /** @this {JitsiMeetExternalAPI} */ function (/** @type {unknown} */ kind) {
      return this._request({ type: 'devices', name, deviceType: kind });
    };
  }

  /** @type {any} */ (root).JitsiMeetExternalAPI = Object.assign(JitsiMeetExternalAPI, { Postis, Transport, COMMANDS, EVENTS });
})(globalThis);
