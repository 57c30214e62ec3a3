// The test page for the stock lib-jitsi-meet bundle (`LJM_BUNDLE`), served by
// `stock.js`'s page server from an origin other than Convene's. It joins the room named
// in the query with lib-jitsi-meet's defaults (codecs, SVC, bridge channel) and only the
// deployment settings of Convene's `config.js` (hosts, WebSocket, no P2P), as an app on
// lib-jitsi-meet does, and exposes controls for the tests as `window.stock`.
/* global JitsiMeetJS, config */

const params = new URLSearchParams(location.search);
const room = params.get('room') ?? 'stock';
/** Keep-alive period: short, so that a test sees the cross-origin probe within seconds. */
const KEEP_ALIVE_MS = 2000;

/** @type {any} */
const w = window;
w.stockErrors = [];
w.addEventListener('error', (/** @type {ErrorEvent} */ e) => w.stockErrors.push(String(e.message)));
w.addEventListener('unhandledrejection', (/** @type {PromiseRejectionEvent} */ e) => w.stockErrors.push(String(e.reason?.stack ?? e.reason)));

JitsiMeetJS.init({});

/** @type {any} */ let connection;
/** @type {any} */ let conference;
/** @type {any[]} */ let localTracks = [];
/** @type {any} */ let screenTrack;
const events = JitsiMeetJS.events;

/** What happened to this participant, for the tests: `kicked`, `failed`, `role`, `muted`. @type {any[]} */
w.stockEvents = [];

/**
 * Connects and joins (with the room `password`, if given); resolves once in the MUC with
 * camera and microphone added, rejects with lib-jitsi-meet's error (`conference.passwordRequired`,
 * `conference.connectionError.membersOnly`...) when the room refuses.
 * @param {string} [password]
 */
async function join(password) {
  connection = new JitsiMeetJS.JitsiConnection(null, null, {
    hosts: config.hosts,
    serviceUrl: `${config.websocket}?room=${encodeURIComponent(room)}`,
    websocketKeepAlive: KEEP_ALIVE_MS,
  });
  await new Promise((resolve, reject) => {
    connection.addEventListener(events.connection.CONNECTION_ESTABLISHED, resolve);
    connection.addEventListener(events.connection.CONNECTION_FAILED, (/** @type {any} */ e) => reject(new Error(`connection failed: ${e}`)));
    connection.connect();
  });
  conference = connection.initJitsiConference(room, { p2p: config.p2p });
  w.stockConference = conference;
  conference.on(events.conference.TRACK_ADDED, (/** @type {any} */ track) => {
    if (track.isLocal()) return;
    const element = document.createElement(track.getType() === 'audio' ? 'audio' : 'video');
    element.autoplay = true;
    element.muted = track.getType() === 'audio' ? false : true;
    element.dataset.participant = track.getParticipantId();
    document.body.append(element);
    track.attach(element);
  });
  localTracks = /** @type {any[]} */ (await JitsiMeetJS.createLocalTracks({ devices: ['audio', 'video'] }));
  conference.on(events.conference.KICKED, (/** @type {any} */ actor, /** @type {string} */ reason) => w.stockEvents.push({ type: 'kicked', actor: actor?.getId?.(), reason }));
  conference.on(events.conference.CONFERENCE_FAILED, (/** @type {string} */ error, /** @type {string} */ reason) => w.stockEvents.push({ type: 'failed', error, reason }));
  conference.on(events.conference.USER_ROLE_CHANGED, (/** @type {string} */ id, /** @type {string} */ role) => w.stockEvents.push({ type: 'role', id, role }));
  conference.on(events.conference.TRACK_MUTE_CHANGED, (/** @type {any} */ track, /** @type {any} */ by) => {
    if (track.isLocal() && by) w.stockEvents.push({ type: 'muted', kind: track.getType(), by: by.getId() });
  });
  conference.setDisplayName(params.get('name') ?? 'stock');
  for (const track of localTracks) await conference.addTrack(track);
  await enter(password);
  return conference.myUserId();
}

/** Joins the MUC (again, after a refusal): resolves when in, rejects with the error name. @param {string} [password] */
function enter(password) {
  return new Promise((resolve, reject) => {
    const done = () => {
      conference.off(events.conference.CONFERENCE_JOINED, joined);
      conference.off(events.conference.CONFERENCE_FAILED, failed);
    };
    const joined = () => {
      done();
      resolve(undefined);
    };
    const failed = (/** @type {string} */ error) => {
      done();
      reject(new Error(error));
    };
    conference.on(events.conference.CONFERENCE_JOINED, joined);
    conference.on(events.conference.CONFERENCE_FAILED, failed);
    conference.join(password);
  });
}

/** Whether this participant's own `kind` track is muted. @param {'audio' | 'video'} kind */
const isMuted = (kind) => localTracks.find((t) => t.getType() === kind).isMuted();

/** @param {'audio' | 'video'} kind @param {boolean} muted */
async function mute(kind, muted) {
  const track = localTracks.find((t) => t.getType() === kind);
  await (muted ? track.mute() : track.unmute());
}

/** Adds the screen as a second video source (videoType desktop). */
async function shareScreen() {
  const tracks = /** @type {any[]} */ (await JitsiMeetJS.createLocalTracks({ devices: ['desktop'] }));
  // Chromium may capture the screen's audio too: only the video is the second source here.
  for (const track of tracks) if (track.getType() !== 'video') await track.dispose();
  screenTrack = tracks.find((track) => track.getType() === 'video');
  await conference.addTrack(screenTrack);
}

async function stopScreen() {
  await conference.removeTrack(screenTrack);
  await screenTrack.dispose();
  screenTrack = undefined;
}

async function leave() {
  await conference.leave();
  for (const track of localTracks) await track.dispose();
  await connection.disconnect();
}

/** The remote participants this page knows. */
const participants = () => conference.getParticipants().map((/** @type {any} */ p) => p.getId());

w.stock = {
  join,
  enter,
  mute,
  isMuted,
  shareScreen,
  stopScreen,
  leave,
  participants,
  /** @param {any} constraints */
  setReceiverConstraints: (constraints) => conference.setReceiverConstraints(constraints),
};
