// `external_api.js` without a browser: its name maps, and its Postis channel and transport
// between two fake windows (the `__ready__` handshake, buffering, scope, origin and source
// checks, size limit, requests and responses).
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import '../../../crates/web/client/external_api.js';

const { Postis, Transport, COMMANDS, EVENTS } = /** @type {any} */ (globalThis).JitsiMeetExternalAPI;

/** An inbox Postis listens on, remembering every message delivered to it. */
function inbox() {
  const target = /** @type {any} */ (new EventTarget());
  target.received = [];
  return target;
}

/** What a window's `postMessage` does: deliver to `to` as sent from `origin` by `source`. */
function sender(/** @type {any} */ to, /** @type {string} */ origin, /** @type {object} */ source) {
  return {
    postMessage: (/** @type {string} */ data) =>
      setImmediate(() => {
        to.received.push(data);
        const ev = new Event('message');
        Object.assign(ev, { data, origin, source });
        to.dispatchEvent(ev);
      }),
  };
}

const HOST_WINDOW = {};
const APP_WINDOW = {};
const tick = () => new Promise((r) => setTimeout(r, 120));
/** @type {any[]} */
let open = [];
afterEach(() => {
  for (const p of open) p.destroy();
  open = [];
});

/** The embedding page's endpoint (origin check) and the meeting's (source check). */
function hostSide(/** @type {any} */ hostInbox, /** @type {any} */ appInbox) {
  const p = new Postis({ target: sender(appInbox, 'https://site.example', HOST_WINDOW), scope: 'jitsi_meet_external_api_0', listenOn: hostInbox, allowedOrigin: 'https://meet.example' });
  open.push(p);
  return p;
}
function appSide(/** @type {any} */ hostInbox, /** @type {any} */ appInbox) {
  const p = new Postis({ target: sender(hostInbox, 'https://meet.example', APP_WINDOW), scope: 'jitsi_meet_external_api_0', listenOn: appInbox, source: HOST_WINDOW });
  open.push(p);
  return p;
}

describe('external_api.js', () => {
  it('maps API names to the wire names of Jitsi Meet', () => {
    assert.equal(COMMANDS.hangup, 'video-hangup');
    assert.equal(COMMANDS.toggleShareScreen, 'toggle-share-screen');
    assert.equal(COMMANDS.toggleE2EE, 'toggle-e2ee');
    assert.equal(COMMANDS.toggleVirtualBackgroundDialog, 'toggle-virtual-background');
    assert.equal(COMMANDS.sendCameraFacingMode, 'send-camera-facing-mode-message');
    assert.equal(COMMANDS.setAssumedBandwidthBps, 'set-assumed-bandwidth-bps');
    assert.equal(EVENTS['video-ready-to-close'], 'readyToClose');
    assert.equal(EVENTS['video-conference-joined'], 'videoConferenceJoined');
    assert.equal(EVENTS['p2p-status-changed'], 'p2pStatusChanged');
    assert.equal(EVENTS['participant-menu-button-clicked'], 'participantMenuButtonClick');
  });

  it('sends only __ready__ until the handshake is done, then the buffered messages', async () => {
    const appInbox = inbox();
    const hostInbox = inbox();
    const host = hostSide(hostInbox, appInbox);
    host.send('message', { type: 'event', data: { name: 'toggle-audio', data: [] } });
    await tick();
    const methods = appInbox.received.map((/** @type {string} */ m) => JSON.parse(m).method);
    assert.ok(methods.length > 0 && methods.every((/** @type {string} */ m) => m === '__ready__'), 'nothing but __ready__ before the peer answers');
    const app = appSide(hostInbox, appInbox);
    /** @type {unknown[]} */
    const got = [];
    app.listen('message', (/** @type {unknown} */ m) => got.push(m));
    await tick();
    assert.deepEqual(got, [{ type: 'event', data: { name: 'toggle-audio', data: [] } }]);
    assert.ok(host.isReady && app.isReady);
    const last = JSON.parse(appInbox.received.at(-1));
    assert.equal(last.postis, true);
    assert.equal(last.scope, 'jitsi_meet_external_api_0');
  });

  it('drops other scopes, other origins, other sources, non-JSON and oversized messages', async () => {
    const appInbox = inbox();
    const hostInbox = inbox();
    const host = hostSide(hostInbox, appInbox);
    const app = appSide(hostInbox, appInbox);
    await tick();
    assert.ok(host.isReady && app.isReady);
    /** @param {any} endpoint @param {any} box @param {unknown} data @param {string} origin @param {object} source */
    const deliver = (endpoint, box, data, origin, source) => {
      /** @type {unknown[]} */
      const got = [];
      endpoint.listen('message', (/** @type {unknown} */ m) => got.push(m));
      const ev = new Event('message');
      Object.assign(ev, { data, origin, source });
      box.dispatchEvent(ev);
      return got;
    };
    const good = (/** @type {unknown} */ params, scope = 'jitsi_meet_external_api_0') => JSON.stringify({ postis: true, scope, method: 'message', params });
    const fromApp = (/** @type {unknown} */ data, origin = 'https://meet.example') => deliver(host, hostInbox, data, origin, APP_WINDOW);
    assert.deepEqual(fromApp(good(1)), [1]);
    for (const bad of [
      good(2, 'jitsi_meet_external_api_1'),
      '{not json',
      { postis: true, scope: 'jitsi_meet_external_api_0', method: 'message', params: 3 },
      good('x'.repeat(70_000)),
      JSON.stringify({ postis: false, scope: 'jitsi_meet_external_api_0', method: 'message', params: 4 }),
    ]) {
      assert.deepEqual(fromApp(bad), [], String(bad).slice(0, 60));
    }
    assert.deepEqual(fromApp(good(5), 'https://evil.example'), [], 'another origin');
    // The meeting side checks the sending window instead.
    assert.deepEqual(deliver(app, appInbox, good(6), 'https://anything.example', HOST_WINDOW), [6]);
    assert.deepEqual(deliver(app, appInbox, good(7), 'https://site.example', {}), [], 'another window');
  });

  it('answers requests with results and errors, and resolves the asker', async () => {
    const appInbox = inbox();
    const hostInbox = inbox();
    const host = new Transport(hostSide(hostInbox, appInbox));
    const app = new Transport(appSide(hostInbox, appInbox));
    app.onRequest = (/** @type {any} */ data) => {
      if (data.name === 'is-audio-muted') return true;
      throw new Error('no such request');
    };
    /** @type {unknown[]} */
    const events = [];
    host.onEvent = (/** @type {unknown} */ e) => events.push(e);
    assert.equal(await host.sendRequest({ name: 'is-audio-muted' }), true);
    await assert.rejects(host.sendRequest({ name: 'nope' }), (e) => e === 'no such request');
    app.sendEvent({ name: 'video-conference-joined', id: 'ab12cd34' });
    await tick();
    assert.deepEqual(events, [{ name: 'video-conference-joined', id: 'ab12cd34' }]);
  });
});
