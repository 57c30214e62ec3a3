// @ts-check
/**
 * The room page: pre-join screen, then the meeting (grid, toolbar, chat, participants),
 * with automatic rejoin after a lost connection. Protocol work is in `../lib/`.
 */

import { Conference, REACTIONS } from '../lib/conference.js';
import { byId, h } from './dom.js';
import { EmbedApi } from './embed.js';
import { Grid } from './grid.js';
import { icons } from './icons.js';
import { listDevices, openLocalMedia } from './media.js';
import { ROOM_NAME, loadSettings, saved } from './settings.js';
import { needsSignIn, oidcUrl, refusal, showSignIn } from './signin.js';

const { config, userInfo, apiId } = loadSettings();
// `/<room>` or `/<tenant>/<room>`: the room is the last segment.
const room = decodeURIComponent(location.pathname.split('/').pop() ?? '');
const LOCAL = 'local';
const SPEAKING_LEVEL = 0.02;

/** Everything the page shows, kept in one place. */
const state = {
  displayName: userInfo.displayName ?? saved.get('convene.displayName') ?? '',
  /** @type {MediaStreamTrack | null} */ mic: null,
  /** @type {MediaStreamTrack | null} */ cam: null,
  micMuted: !!config.startWithAudioMuted,
  camMuted: !!config.startWithVideoMuted,
  /** @type {MediaStreamTrack | null} */ screen: null,
  /** @type {Conference | undefined} */ conference: undefined,
  unread: 0,
  /** @type {string | undefined} */ dominant: undefined,
  /** The room's password, once the embedding page gave it. */
  password: '',
  left: false,
  reconnectDelay: 1000,
  /** The focus keeps us waiting until a host is in (a guest on a secure domain). */
  waitingForHost: false,
  /** The tallest video the host page of an embedded meeting wants received (`setVideoQuality`). */
  maxReceiveHeight: Infinity,
};

/**
 * The iframe API's endpoint when the page is embedded (`#jitsi_meet_external_api_id=<N>`).
 * @type {EmbedApi | undefined}
 */
const embed =
  apiId === undefined
    ? undefined
    : new EmbedApi(apiId, room, {
        status: () => ({
          audioMuted: state.micMuted || !state.mic,
          videoMuted: state.camMuted || !state.cam,
          audioAvailable: !!state.mic,
          videoAvailable: !!state.cam,
          sharing: !!state.screen,
          chatOpen: !byId('chat-panel').hidden,
          peopleOpen: !byId('people-panel').hidden,
          unread: state.unread,
          displayName: state.displayName,
          startSilent: false,
          micId: state.mic?.getSettings().deviceId,
          camId: state.cam?.getSettings().deviceId,
        }),
        setMuted,
        setScreenShare: async (on = !state.screen) => {
          if (on && !state.screen) await startScreenShare();
          else if (!on && state.screen) stopScreenShare(true);
        },
        setPanel: togglePanel,
        sendChat,
        hangup,
        setDisplayName: (name) => {
          state.displayName = name;
          /** @type {HTMLInputElement} */ (byId('name')).value = name;
          grid?.tiles.get(LOCAL)?.setName(`${name || 'Me'} (you)`);
          state.conference?.setDisplayName(name);
        },
        joinWithPassword,
        setMaxReceiveHeight: (height) => {
          state.maxReceiveHeight = height;
          sendConstraints();
        },
      }, config);

// Test and debugging hook: the current conference and its PeerConnection.
Object.assign(window, {
  convene: {
    get conference() {
      return state.conference;
    },
    get pc() {
      return state.conference?.session?.pc;
    },
    state,
  },
});

document.title = `${room} · ${config.appName ?? 'Convene'}`;

if (!ROOM_NAME.test(room)) {
  showEnded('This meeting name is not valid.', '');
} else {
  start();
}

async function start() {
  // The token is in the address only to get here: keep it out of bookmarks and shares.
  if (config.token) history.replaceState(null, '', location.pathname + location.hash);
  if (needsSignIn(config)) await showSignIn(config, room);
  if (config.prejoinConfig?.enabled === false) startWithoutPrejoin();
  else showPrejoin();
}

// ---------------------------------------------------------------------------- banner

/** @type {ReturnType<typeof setTimeout> | undefined} */
let bannerTimer;
/** @param {string} text @param {'error' | 'info'} kind @param {number} [hideAfterMs] */
function banner(text, kind, hideAfterMs) {
  const el = byId('banner');
  el.textContent = text;
  el.className = `banner ${kind}`;
  el.hidden = false;
  clearTimeout(bannerTimer);
  if (hideAfterMs) bannerTimer = setTimeout(() => (el.hidden = true), hideAfterMs);
}

// ---------------------------------------------------------------------------- pre-join

async function showPrejoin() {
  byId('prejoin').hidden = false;
  byId('prejoin-title').textContent = `Join “${room}”`;
  const nameInput = /** @type {HTMLInputElement} */ (byId('name'));
  nameInput.value = state.displayName;
  nameInput.readOnly = config.readOnlyName === true;
  const micSelect = /** @type {HTMLSelectElement} */ (byId('mic-select'));
  const camSelect = /** @type {HTMLSelectElement} */ (byId('cam-select'));
  const preview = /** @type {HTMLVideoElement} */ (byId('preview'));

  const refreshPreview = () => {
    const on = !!state.cam && !state.camMuted;
    preview.srcObject = on && state.cam ? new MediaStream([state.cam]) : null;
    byId('preview-off').hidden = on;
    setToggle(byId('pre-mic'), !state.micMuted && !!state.mic, icons.mic, icons.micOff, 'microphone');
    setToggle(byId('pre-cam'), on, icons.cam, icons.camOff, 'camera');
  };

  const stopMeter = micMeter(byId('mic-level'));
  /** @param {{ micId?: string, camId?: string }} ids */
  const acquire = async (ids) => {
    state.mic?.stop();
    state.cam?.stop();
    const media = await openLocalMedia({ ...ids, height: config.resolution ?? 720, audio: true, video: true });
    state.mic = media.audio;
    state.cam = media.video;
    showMediaErrors(media.errors);
    const { mics, cams } = await listDevices();
    fillSelect(micSelect, mics, state.mic?.getSettings().deviceId);
    fillSelect(camSelect, cams, state.cam?.getSettings().deviceId);
    rememberDevices();
    refreshPreview();
  };

  micSelect.onchange = () => acquire({ micId: micSelect.value, camId: camSelect.value });
  camSelect.onchange = () => acquire({ micId: micSelect.value, camId: camSelect.value });
  byId('pre-mic').onclick = () => {
    state.micMuted = !state.micMuted;
    refreshPreview();
  };
  byId('pre-cam').onclick = () => {
    state.camMuted = !state.camMuted;
    refreshPreview();
  };
  const join = () => {
    stopMeter();
    state.displayName = nameInput.value.trim().slice(0, 64);
    saved.set('convene.displayName', state.displayName);
    byId('prejoin').hidden = true;
    preview.srcObject = null;
    enterMeeting();
  };
  byId('join').onclick = join;
  nameInput.onkeydown = (ev) => {
    if (ev.key === 'Enter') join();
  };
  await acquire({ micId: saved.get('convene.micId'), camId: saved.get('convene.camId') });
}

/** Keeps the chosen devices for the next meeting. */
function rememberDevices() {
  const micId = state.mic?.getSettings().deviceId;
  const camId = state.cam?.getSettings().deviceId;
  if (micId) saved.set('convene.micId', micId);
  if (camId) saved.set('convene.camId', camId);
}

/**
 * Shows the microphone level on the pre-join screen; returns the function that stops it.
 * @param {HTMLElement} bar
 */
function micMeter(bar) {
  /** @type {AudioContext | undefined} */
  let context;
  /** @type {MediaStreamTrack | null} */
  let source = null;
  /** @type {AnalyserNode | undefined} */
  let analyser;
  const samples = new Uint8Array(512);
  let running = true;
  const tick = () => {
    if (!running) return;
    const mic = state.micMuted ? null : state.mic;
    if (mic !== source) {
      source = mic;
      analyser = undefined;
      if (mic) {
        context ??= new AudioContext();
        analyser = context.createAnalyser();
        analyser.fftSize = samples.length;
        context.createMediaStreamSource(new MediaStream([mic])).connect(analyser);
      }
    }
    let peak = 0;
    if (analyser) {
      analyser.getByteTimeDomainData(samples);
      for (const v of samples) peak = Math.max(peak, Math.abs(v - 128) / 128);
    }
    bar.style.width = `${Math.min(100, Math.round(peak * 140))}%`;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  return () => {
    running = false;
    context?.close().catch(() => undefined);
  };
}

/** @param {string[]} errors */
function showMediaErrors(errors) {
  const el = byId('media-error');
  el.textContent = errors.join(' ');
  el.hidden = errors.length === 0;
  if (errors.length > 0 && byId('prejoin').hidden) banner(errors.join(' '), 'error', 10_000);
}

/**
 * @param {HTMLSelectElement} select @param {MediaDeviceInfo[]} devices @param {string | undefined} current
 */
function fillSelect(select, devices, current) {
  select.replaceChildren(
    ...devices.map((d, i) => {
      const option = h('option', undefined, d.label || `Device ${i + 1}`);
      option.value = d.deviceId;
      option.selected = d.deviceId === current;
      return option;
    }),
  );
  select.disabled = devices.length === 0;
}

async function startWithoutPrejoin() {
  const media = await openLocalMedia({ height: config.resolution ?? 720, audio: true, video: true });
  state.mic = media.audio;
  state.cam = media.video;
  showMediaErrors(media.errors);
  enterMeeting();
}

// ---------------------------------------------------------------------------- meeting

/** @type {Grid} */
let grid;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let constraintsTimer;
/** @type {Set<string> | undefined} */
let forwarded;

// Closing the tab leaves the room at once instead of waiting for the server to notice.
window.addEventListener('pagehide', () => state.conference?.leave());

function enterMeeting() {
  byId('meeting').hidden = false;
  grid = new Grid(byId('grid'), () => {
    clearTimeout(constraintsTimer);
    constraintsTimer = setTimeout(sendConstraints, 200);
  });
  const local = grid.ensure(LOCAL, `${state.displayName || 'Me'} (you)`, { local: true });
  local.setVideo(state.cam && !state.camMuted ? state.cam : null);
  setupToolbar();
  setupChat();
  setInterval(updateSpeaking, 300);
  connect();
}

async function connect() {
  const conference = new Conference(config, room, state.displayName);
  conference.password = state.password;
  if (userInfo.email) conference.setProfile({ email: userInfo.email });
  state.conference = conference;
  embed?.attach(conference);
  conference.on('muted-remotely', (kind) => {
    banner(`A moderator muted your ${kind === 'audio' ? 'microphone' : 'camera'}.`, 'info', 4000);
    setMuted(kind, true);
  });
  conference.on('kicked', (id) => {
    if (id !== conference.endpointId) return embed?.notify('participant-kicked-out', { kicked: { id, local: false }, kicker: {} });
    embed?.notify('participant-kicked-out', { kicked: { id, local: true }, kicker: {} });
    endMeeting('You were removed from the meeting', 'A moderator removed you.');
  });
  conference.on('participant-joined', (p) => {
    const tile = grid.ensure(p.id, p.displayName || 'Guest');
    applyParticipant(tile, p);
    tile.setDominant(state.dominant === p.id);
    renderPeople();
  });
  conference.on('participant-updated', (p) => {
    const tile = grid.ensure(p.id, p.displayName || 'Guest');
    applyParticipant(tile, p);
    const screen = grid.tiles.get(`${p.id}-v1`);
    if (screen && p.sources[`${p.id}-v1`]?.muted !== false) grid.remove(`${p.id}-v1`);
    renderPeople();
  });
  conference.on('participant-left', (id) => {
    for (const key of [...grid.tiles.keys()]) if (key === id || key.startsWith(`${id}-`)) grid.remove(key);
    renderPeople();
  });
  conference.on('track-added', ({ endpointId, sourceName, kind, videoType, track }) => {
    const name = conference.participants.get(endpointId)?.displayName || 'Guest';
    if (kind === 'audio') {
      grid.ensure(endpointId, name).setAudio(track);
    } else if (videoType === 'desktop') {
      grid.ensure(sourceName, `${name} (screen)`, { screen: true }).setVideo(track);
    } else {
      const tile = grid.ensure(endpointId, name);
      tile.setVideo(track);
      applyParticipant(tile, conference.participants.get(endpointId));
    }
    sendConstraints();
  });
  conference.on('track-removed', (sourceName) => {
    if (grid.tiles.get(sourceName)?.el.classList.contains('screen')) grid.remove(sourceName);
    else grid.tiles.get(sourceName.replace(/-v\d+$/, ''))?.setVideo(null);
  });
  conference.on('dominant-speaker', (id) => {
    state.dominant = id;
    for (const [key, tile] of grid.tiles) tile.setDominant(key === id || (key === LOCAL && id === conference.endpointId));
  });
  conference.on('forwarded-sources', (names) => {
    forwarded = names;
    for (const [id, p] of conference.participants) applyParticipant(grid.ensure(id, p.displayName || 'Guest'), p);
  });
  conference.on('chat', addChatMessage);
  conference.on('media-connected', (up) => {
    if (!up) banner('Media connection interrupted. Trying to restore it…', 'error');
    else if (byId('banner').textContent?.startsWith('Media connection')) byId('banner').hidden = true;
  });
  conference.on('reaction', ({ from, reaction }) => {
    const emoji = REACTIONS.get(reaction);
    if (emoji) grid.tiles.get(from)?.showReaction(emoji);
  });
  conference.on('simulcast', (on) => {
    if (!on && !config.disableSimulcast) console.warn('simulcast unavailable: sending a single video layer');
  });
  conference.on('disconnected', ({ reason }) => onDisconnected(reason));
  conference.on('waiting-for-host', (waiting) => {
    state.waitingForHost = waiting;
    if (waiting) banner('Waiting for the host. The meeting starts as soon as a host joins.', 'info');
    else byId('banner').hidden = true;
  });

  try {
    await conference.join({ audio: state.micMuted ? null : state.mic, video: state.camMuted ? null : state.cam });
    if (state.reconnectDelay > 1000) banner('Reconnected.', 'info', 3000);
    else byId('banner').hidden = true;
    state.reconnectDelay = 1000;
    renderPeople();
  } catch (err) {
    conference.leave();
    const reason = err instanceof Error ? err.message : String(err);
    // A refused sign-in or a refused join does not get better by retrying.
    if (err instanceof Error && err.name === 'AuthError') {
      embed?.notify('error-occurred', { name: 'conference.authenticationRequired', message: reason, isFatal: true, type: 'CONFERENCE' });
      state.left = true;
      const { title, text, signInAgain } = refusal(config, err);
      byId('meeting').hidden = true;
      showEnded(title, text, signInAgain);
      return;
    }
    if (err instanceof Error && err.name === 'PasswordRequired') {
      banner(state.password ? 'The password was not accepted.' : 'This meeting is protected by a password.', 'error');
      // Embedded, the host page answers with the `password` command; else the person types it.
      if (embed) embed.passwordRequired();
      else joinWithPassword(prompt('This meeting is protected by a password. Password:') ?? '');
      return;
    }
    embed?.notify('error-occurred', { name: 'connection.otherError', message: reason, isFatal: false, type: 'CONNECTION' });
    onDisconnected(reason);
  }
}

/** Joins again with the room's password ('' gives up). @param {string} password */
function joinWithPassword(password) {
  if (!password) return endMeeting('This meeting is protected by a password', '');
  state.password = password;
  connect();
}

/** @param {string} reason */
function onDisconnected(reason) {
  if (state.left) return;
  for (const key of [...grid.tiles.keys()]) if (key !== LOCAL) grid.remove(key);
  grid.tiles.get(LOCAL)?.setDominant(false);
  forwarded = undefined;
  state.dominant = undefined;
  stopScreenShare(false);
  const seconds = Math.round(state.reconnectDelay / 1000);
  const what = state.conference?.endpointId ? 'Connection lost' : 'Cannot connect to the meeting server';
  banner(`${what} (${reason}). Reconnecting in ${seconds} s…`, 'error');
  setTimeout(() => {
    if (!state.left) connect();
  }, state.reconnectDelay);
  state.reconnectDelay = Math.min(state.reconnectDelay * 2, 15_000);
}

/**
 * @param {import('./grid.js').Tile} tile
 * @param {import('../lib/conference.js').Participant | undefined} p
 */
function applyParticipant(tile, p) {
  if (!p) return;
  tile.setName(p.displayName || 'Guest');
  tile.setAudioMuted(p.sources[`${p.id}-a0`]?.muted === true);
  const camMuted = p.sources[`${p.id}-v0`]?.muted === true;
  const notForwarded = forwarded !== undefined && !forwarded.has(`${p.id}-v0`);
  tile.setVideoOff(camMuted || notForwarded);
}

/** Tells the bridge which videos we show and at what height, from the tiles' sizes. */
function sendConstraints() {
  const bridge = state.conference?.bridge;
  if (!bridge) return;
  /** @type {Record<string, number>} */
  const maxHeights = {};
  for (const [key, tile] of grid.tiles) {
    if (key === LOCAL) continue;
    const source = tile.el.classList.contains('screen') ? key : `${key}-v0`;
    const height = tile.el.clientHeight * (window.devicePixelRatio || 1);
    const wanted = tile.el.classList.contains('screen') ? 1080 : height <= 200 ? 180 : height <= 400 ? 360 : 720;
    maxHeights[source] = Math.min(wanted, state.maxReceiveHeight);
  }
  bridge.setConstraints({ lastN: -1, onStageSources: [], defaultMaxHeight: Math.min(180, state.maxReceiveHeight), maxHeights });
}

async function updateSpeaking() {
  const session = state.conference?.session;
  if (!session) return;
  const { remote, local } = await session.audioLevels();
  for (const [key, tile] of grid.tiles) {
    if (key !== LOCAL) tile.setSpeaking((remote.get(key) ?? 0) > SPEAKING_LEVEL);
  }
  const micOn = Boolean(state.mic) && !state.micMuted;
  grid.tiles.get(LOCAL)?.setSpeaking(micOn && local > SPEAKING_LEVEL);
}

// ---------------------------------------------------------------------------- toolbar

/**
 * @param {HTMLElement} button @param {boolean} on @param {string} iconOn @param {string} iconOff @param {string} what
 */
function setToggle(button, on, iconOn, iconOff, what) {
  button.innerHTML = on ? iconOn : iconOff;
  button.classList.toggle('off', !on);
  const label = `${on ? 'Turn off' : 'Turn on'} ${what}`;
  button.title = label;
  button.setAttribute('aria-label', label);
  button.setAttribute('aria-pressed', String(!on));
}

function renderToolbar() {
  setToggle(byId('btn-mic'), !!state.mic && !state.micMuted, icons.mic, icons.micOff, 'microphone');
  setToggle(byId('btn-cam'), !!state.cam && !state.camMuted, icons.cam, icons.camOff, 'camera');
  const screen = byId('btn-screen');
  screen.innerHTML = icons.screen;
  screen.classList.toggle('active', !!state.screen);
  screen.title = state.screen ? 'Stop sharing your screen' : 'Share your screen';
  screen.setAttribute('aria-label', screen.title);
  const react = byId('btn-react');
  react.innerHTML = icons.react;
  react.title = 'Send a reaction';
  react.setAttribute('aria-label', react.title);
  document.title = `${state.unread > 0 ? `(${state.unread}) ` : ''}${room} · ${config.appName ?? 'Convene'}`;
  const chat = byId('btn-chat');
  chat.innerHTML = icons.chat + (state.unread > 0 ? `<span class="badge" id="unread">${state.unread}</span>` : '');
  chat.title = state.unread > 0 ? `Chat (${state.unread} unread)` : 'Chat';
  chat.setAttribute('aria-label', chat.title);
  const people = byId('btn-people');
  people.innerHTML = icons.people;
  people.title = 'Participants';
  people.setAttribute('aria-label', 'Participants');
  const leave = byId('btn-leave');
  leave.innerHTML = icons.leave;
  leave.title = 'Leave the meeting';
  leave.setAttribute('aria-label', leave.title);
}

function setupToolbar() {
  renderToolbar();
  byId('btn-mic').onclick = () => setMuted('audio');
  byId('btn-cam').onclick = () => setMuted('video');
  hideToolbarButtons();
  byId('btn-screen').onclick = () => (state.screen ? stopScreenShare(true) : startScreenShare());
  const menu = byId('reactions-menu');
  menu.replaceChildren(
    ...[...REACTIONS].map(([name, emoji]) => {
      const item = h('button', 'reaction-choice', emoji);
      item.type = 'button';
      item.dataset.reaction = name;
      item.title = name;
      item.setAttribute('role', 'menuitem');
      item.onclick = () => {
        state.conference?.sendReaction(name);
        grid.tiles.get(LOCAL)?.showReaction(emoji);
        menu.hidden = true;
        byId('btn-react').setAttribute('aria-expanded', 'false');
      };
      return item;
    }),
  );
  byId('btn-react').onclick = () => {
    menu.hidden = !menu.hidden;
    byId('btn-react').setAttribute('aria-expanded', String(!menu.hidden));
  };
  byId('btn-chat').onclick = () => togglePanel('chat');
  byId('btn-people').onclick = () => togglePanel('people');
  byId('btn-leave').onclick = hangup;
  for (const button of document.querySelectorAll('[data-close]')) {
    /** @type {HTMLElement} */ (button).onclick = () => togglePanel(/** @type {'chat' | 'people'} */ (/** @type {HTMLElement} */ (button).dataset.close));
  }
}

/**
 * Mutes or unmutes the microphone or camera (toggles when `muted` is undefined).
 * @param {'audio' | 'video'} kind @param {boolean} [muted]
 */
async function setMuted(kind, muted) {
  const track = kind === 'audio' ? state.mic : state.cam;
  if (!track) {
    const what = kind === 'audio' ? 'microphone' : 'camera';
    return banner(`No ${what} is available. Check the browser’s permission for this site.`, 'error', 6000);
  }
  const now = muted ?? !(kind === 'audio' ? state.micMuted : state.camMuted);
  if (kind === 'audio') state.micMuted = now;
  else state.camMuted = now;
  renderToolbar();
  renderPeople();
  if (kind === 'video') grid.tiles.get(LOCAL)?.setVideo(now ? null : track);
  embed?.notify(`${kind}-mute-status-changed`, { muted: now });
  await state.conference?.setTrack(kind, now ? null : track);
}

/** Jitsi Meet's toolbar keys of our buttons: `config.toolbarButtons` lists those to show. */
const TOOLBAR_KEYS = {
  'btn-mic': 'microphone',
  'btn-cam': 'camera',
  'btn-screen': 'desktop',
  'btn-react': 'reactions',
  'btn-chat': 'chat',
  'btn-people': 'participants-pane',
  'btn-leave': 'hangup',
};

function hideToolbarButtons() {
  const shown = config.toolbarButtons;
  if (!Array.isArray(shown)) return;
  for (const [id, key] of Object.entries(TOOLBAR_KEYS)) {
    const button = byId(id);
    (button.parentElement?.classList.contains('reactions-wrap') ? button.parentElement : button).hidden = !shown.includes(key);
  }
}

/** Leaves the meeting for good (the leave button, the iframe API's hang-up). */
function hangup() {
  if (state.left) return;
  endMeeting('You left the meeting', '');
  embed?.notify('video-ready-to-close', {});
}

/** Leaves, releases the devices and shows the end page. @param {string} title @param {string} reason */
function endMeeting(title, reason) {
  const wasIn = !state.left && !!state.conference?.endpointId;
  state.left = true;
  state.conference?.leave();
  stopScreenShare(false);
  state.mic?.stop();
  state.cam?.stop();
  byId('meeting').hidden = true;
  showEnded(title, reason);
  if (wasIn) embed?.notify('video-conference-left', { roomName: room });
}

async function startScreenShare() {
  const conference = state.conference;
  if (!conference?.session) return banner('Screen sharing starts once the media connection is up.', 'info', 4000);
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
  } catch (err) {
    if (err instanceof Error && err.name !== 'NotAllowedError') banner(`Screen sharing failed: ${err.message}`, 'error', 6000);
    return;
  }
  const track = stream.getVideoTracks()[0];
  if (!track) return;
  state.screen = track;
  track.onended = () => stopScreenShare(true);
  grid.ensure(`${LOCAL}-v1`, 'Your screen', { local: true, screen: true }).setVideo(track);
  renderToolbar();
  embed?.notify('screen-sharing-status-changed', { on: true, details: { sourceType: 'screen' } });
  await conference.startScreenShare(track);
}

/** @param {boolean} notify tell the others (false when the conference is gone anyway) */
function stopScreenShare(notify) {
  const track = state.screen;
  if (!track) return;
  state.screen = null;
  track.onended = null;
  track.stop();
  grid?.remove(`${LOCAL}-v1`);
  renderToolbar();
  embed?.notify('screen-sharing-status-changed', { on: false, details: {} });
  if (notify) state.conference?.stopScreenShare();
}

/** Opens or closes a side panel (toggles when `open` is undefined). @param {'chat' | 'people'} which @param {boolean} [open] */
function togglePanel(which, open = byId(`${which}-panel`).hidden === true) {
  const panel = byId(`${which}-panel`);
  byId('chat-panel').hidden = true;
  byId('people-panel').hidden = true;
  panel.hidden = !open;
  byId('btn-chat').classList.toggle('active', which === 'chat' && open);
  byId('btn-people').classList.toggle('active', which === 'people' && open);
  if (which === 'chat' && open) {
    state.unread = 0;
    /** @type {HTMLInputElement} */ (byId('chat-input')).focus();
  }
  renderToolbar();
  grid.layout();
  embed?.notify('chat-updated', { isOpen: !byId('chat-panel').hidden, unreadCount: state.unread });
  if (which === 'people') embed?.notify('participants-pane-toggled', { open });
}

// ---------------------------------------------------------------------------- chat & people

function setupChat() {
  const form = /** @type {HTMLFormElement} */ (byId('chat-form'));
  const input = /** @type {HTMLInputElement} */ (byId('chat-input'));
  form.onsubmit = (ev) => {
    ev.preventDefault();
    sendChat(input.value);
    input.value = '';
  };
}

/** @param {string} text */
function sendChat(text) {
  if (!text.trim() || !state.conference) return;
  state.conference.sendChat(text);
  embed?.notify('outgoing-message', { message: text, privateMessage: false });
}

/** @param {import('../lib/conference.js').ChatMessage} m */
function addChatMessage(m) {
  const list = byId('chat-messages');
  const item = h('li', `chat-message${m.self ? ' self' : ''}`);
  const meta = h('div', 'meta');
  meta.append(h('strong', undefined, m.self ? 'You' : m.displayName || 'Guest'), h('time', undefined, new Date(m.timestamp).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })));
  item.append(meta, h('p', 'text', m.text));
  list.append(item);
  list.scrollTop = list.scrollHeight;
  if (!m.self && !m.history && byId('chat-panel').hidden) {
    state.unread++;
    renderToolbar();
    embed?.notify('chat-updated', { isOpen: false, unreadCount: state.unread });
  }
}

function renderPeople() {
  const conference = state.conference;
  const list = byId('people-list');
  const people = [
    { name: `${state.displayName || 'Me'} (you)`, mic: !!state.mic && !state.micMuted, cam: !!state.cam && !state.camMuted },
    ...[...(conference?.participants.values() ?? [])].map((p) => ({
      name: p.displayName || 'Guest',
      mic: p.sources[`${p.id}-a0`]?.muted !== true,
      cam: p.sources[`${p.id}-v0`]?.muted !== true,
    })),
  ];
  byId('people-count').textContent = `(${people.length})`;
  list.replaceChildren(
    ...people.map((p) => {
      const li = h('li', 'person');
      const status = h('span', 'status');
      status.innerHTML = (p.mic ? icons.mic : icons.micOff) + (p.cam ? icons.cam : icons.camOff);
      li.append(h('span', 'person-name', p.name), status);
      return li;
    }),
  );
}

/** @param {string} title @param {string} reason @param {boolean} [signInAgain] the button signs in again */
function showEnded(title, reason, signInAgain = false) {
  byId('ended').hidden = false;
  byId('ended-title').textContent = title;
  byId('ended-reason').textContent = reason;
  const rejoin = byId('rejoin');
  rejoin.textContent = signInAgain ? 'Sign in again' : 'Rejoin';
  // Signing in again starts where this sign-in came from: the provider, or the sign-in screen.
  const oidc = signInAgain && config.token ? oidcUrl(config, room) : undefined;
  rejoin.onclick = () => (oidc ? location.assign(oidc) : location.reload());
  rejoin.focus();
}
