// The iframe API: a site on an origin of its own embeds Convene meetings with our
// `/external_api.js`, with the old `external_api.min.js` of the npm package
// `lib-jitsi-meet-dist` (as integrations bundle old copies), with the stock app's
// (`JITSI_MEET_DIR`, skipped when unset) and through `@jitsi/react-sdk`; it drives
// commands, receives events and request answers, and reproduces the WordPress, Mattermost
// and Drupal integrations. Convene is behind an HTTPS front (the current scripts always
// build `https://` URLs); the old script's `noSSL` reaches it over plain HTTP.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { embedMeeting, recorded, startHostSite, startTlsFront } from '../support/embed.js';
import { endpointId, launchChromium, requireIsolatedNetwork, startConvene, waitFor } from '../support/harness.js';

const APP_ID = 'mattermost-e2e';
const SECRET = 'e2e embed secret';
const EVENTS = [
  'videoConferenceJoined', 'videoConferenceLeft', 'readyToClose', 'participantJoined', 'participantLeft',
  'participantKickedOut', 'participantRoleChanged', 'audioMuteStatusChanged', 'videoMuteStatusChanged',
  'displayNameChange', 'emailChange', 'incomingMessage', 'outgoingMessage', 'chatUpdated', 'raiseHandUpdated',
  'tileViewChanged', 'filmstripDisplayChanged', 'passwordRequired', 'subjectChange', 'errorOccurred',
];
const NO_PREJOIN = { prejoinConfig: { enabled: false } };

/** @param {string | Buffer} data */
const b64url = (data) => Buffer.from(data).toString('base64url');

/**
 * The token Mattermost's Jitsi plugin signs: HS256, iss = aud = [app id], sub = the host name of
 * its Jitsi URL (here `localhost`, the server's domain), room, exp; no nbf, no iat.
 */
function mattermostToken(room, secret = SECRET) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ iss: APP_ID, aud: [APP_ID], sub: 'localhost', room, exp: Math.floor(Date.now() / 1000) + 1800 }));
  return `${head}.${body}.${createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`;
}

describe('embedding Convene with the iframe API', { timeout: 300_000 }, () => {
  /** @type {Awaited<ReturnType<typeof startConvene>>} */
  let server;
  /** @type {Awaited<ReturnType<typeof startConvene>>} */
  let tokenServer;
  /** @type {Awaited<ReturnType<typeof startTlsFront>>} */
  let front;
  /** @type {Awaited<ReturnType<typeof startHostSite>>} */
  let site;
  /** @type {import('playwright-core').Browser} */
  let browser;

  before(async () => {
    requireIsolatedNetwork();
    server = await startConvene();
    // A second server beside the first: its XMPP TCP port and media port must differ.
    const ports = '[xmpp]\nc2s_listen = "127.0.0.1:5223"\n[bridge]\nudp_port = 0\n';
    tokenServer = await startConvene({ config: `${ports}[auth.token]\nenabled = true\napp_id = "${APP_ID}"\napp_secret = "${SECRET}"\n` });
    front = await startTlsFront(server.url);
    site = await startHostSite();
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    front?.close();
    site?.close();
    await server?.stop();
    await tokenServer?.stop();
  });

  /** A host page of the site with `script` loaded. @param {string} script */
  async function hostPage(script) {
    const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') console.log(`[host] ${m.text().slice(0, 300)} ${m.location().url}`);
    });
    page.on('pageerror', (e) => console.log(`[host] uncaught ${e.message}`));
    await page.goto(site.url);
    await page.addScriptTag({ url: script });
    return page;
  }

  /** A participant opening the meeting link directly. @param {string} room @param {string} name */
  async function guest(room, name) {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}/${room}#config.prejoinConfig.enabled=false&userInfo.displayName="${name}"`);
    await waitFor(() => endpointId(page), `${name} joining`);
    return page;
  }

  /** @param {import('playwright-core').Page} page @param {string} name @param {(e: any) => boolean} [match] */
  const event = (page, name, match = () => true) =>
    waitFor(async () => (await recorded(page, name)).find(match), `event ${name}`);

  /** @param {import('playwright-core').Page} page @param {string} method @param {unknown[]} [args] */
  const call = (page, method, args = []) =>
    page.evaluate(({ method, args }) => /** @type {any} */ (window).api[method](...args), { method, args });

  it('serves the script where integrations look for it', async () => {
    for (const path of ['/external_api.js', '/meeting/external_api.js', '/libs/external_api.min.js', '/external_api.js?release=release-1234']) {
      const res = await fetch(`${server.url}${path}`);
      assert.equal(res.status, 200, path);
      assert.match(await res.text(), /JitsiMeetExternalAPI/);
    }
  });

  it('our script: URL, commands, events, requests and local getters', async () => {
    const room = 'EmbedOurs';
    const host = await hostPage(`${front.url}/external_api.js`);
    await embedMeeting(host, front.host, {
      roomName: room,
      userInfo: { displayName: 'Host', email: 'host@example.com' },
      configOverwrite: { ...NO_PREJOIN, toolbarButtons: ['microphone', 'camera', 'chat', 'hangup'], websocket: 'wss://elsewhere.invalid' },
      width: 640,
      height: '400px',
    }, EVENTS);
    const src = await host.evaluate(() => /** @type {any} */ (window).api.getIFrame().src);
    assert.ok(src.startsWith(`${front.url}/${room}#jitsi_meet_external_api_id=0&config.prejoinConfig=`), src);
    assert.match(src, /&userInfo\.displayName=%22Host%22&userInfo\.email=%22host%40example\.com%22$/);
    await event(host, 'onload');
    const joined = await event(host, 'videoConferenceJoined');
    assert.equal(joined.roomName, room);
    assert.equal(joined.displayName, 'Host');
    assert.equal(joined.email, 'host@example.com');
    assert.match(joined.id, /^[0-9a-f]{8}$/);
    await event(host, 'participantRoleChanged', (e) => e.id === joined.id && e.role === 'moderator');

    const frame = host.frameLocator('iframe');
    assert.equal(await frame.locator('#btn-screen').isHidden(), true, 'toolbarButtons hides the screen-share button');
    assert.equal(await frame.locator('#btn-chat').isVisible(), true);

    const bob = await guest(room, 'Bob');
    const bobId = await endpointId(bob);
    const bobJoined = await event(host, 'participantJoined', (e) => e.id === bobId);
    assert.equal(bobJoined.displayName, 'Bob');
    await waitFor(async () => (await call(host, 'getNumberOfParticipants')) === 2, 'two participants counted');
    assert.deepEqual((await call(host, 'getParticipantsInfo')).map((/** @type {any} */ p) => p.displayName).sort(), ['Bob', 'Host']);
    const rooms = await call(host, 'getRoomsInfo');
    assert.deepEqual(rooms.rooms[0].participants.map((/** @type {any} */ p) => p.displayName).sort(), ['Bob', 'Host']);
    const bobSees = (/** @type {string} */ what) =>
      bob.evaluate(({ id, what }) => {
        const p = /** @type {any} */ (window).convene.conference.participants.get(id);
        return what === 'mic' ? p?.sources[`${id}-a0`]?.muted : what === 'name' ? p?.displayName : what === 'email' ? p?.profile.email : p?.profile.raisedHand;
      }, { id: joined.id, what });
    assert.equal(await bobSees('email'), 'host@example.com');

    assert.equal(await call(host, 'isAudioMuted'), false);
    await call(host, 'executeCommand', ['toggleAudio']);
    assert.deepEqual(await event(host, 'audioMuteStatusChanged'), { muted: true });
    assert.equal(await call(host, 'isAudioMuted'), true);
    await waitFor(async () => (await bobSees('mic')) === true, 'Bob seeing the host muted');

    await call(host, 'executeCommand', ['displayName', 'Hostess']);
    await event(host, 'displayNameChange', (e) => e.id === joined.id && e.displayname === 'Hostess');
    await waitFor(async () => (await bobSees('name')) === 'Hostess', 'Bob seeing the new name');
    assert.equal(await call(host, 'getDisplayName', [joined.id]), 'Hostess');

    await call(host, 'executeCommand', ['sendChatMessage', 'hello from the host']);
    await event(host, 'outgoingMessage', (e) => e.message === 'hello from the host');
    await waitFor(() => bob.locator('.chat-message .text', { hasText: 'hello from the host' }).count(), 'Bob receiving the chat');
    await bob.click('#btn-chat');
    await bob.fill('#chat-input', 'hi host');
    await bob.press('#chat-input', 'Enter');
    const incoming = await event(host, 'incomingMessage');
    assert.deepEqual([incoming.from, incoming.nick, incoming.message, incoming.privateMessage], [bobId, 'Bob', 'hi host', false]);
    await event(host, 'chatUpdated', (e) => e.unreadCount === 1 && e.isOpen === false);
    await call(host, 'executeCommand', ['toggleChat']);
    await event(host, 'chatUpdated', (e) => e.isOpen === true && e.unreadCount === 0);

    await call(host, 'executeCommand', ['toggleRaiseHand']);
    const hand = await event(host, 'raiseHandUpdated', (e) => e.id === joined.id);
    assert.ok(hand.handRaised > 0);
    await waitFor(async () => (await bobSees('hand')) === hand.handRaised, 'Bob seeing the raised hand');

    await call(host, 'executeCommand', ['toggleTileView']);
    assert.deepEqual(await event(host, 'tileViewChanged'), { enabled: true });
    assert.deepEqual(await call(host, 'isP2pActive'), false);
    const devices = await call(host, 'getAvailableDevices');
    assert.deepEqual(Object.keys(devices).sort(), ['audioInput', 'audioOutput', 'videoInput']);
    const current = await call(host, 'getCurrentDevices');
    assert.equal(current.videoInput?.deviceId, devices.videoInput[0].deviceId, 'the fake camera in use');
    // An unknown command is dropped by the script; a feature Convene lacks is refused inside.
    await call(host, 'executeCommand', ['noSuchCommand']);
    await call(host, 'executeCommand', ['startRecording', { mode: 'file' }]);

    // Moderator actions: mute everyone (through the focus), then kick Bob.
    await call(host, 'executeCommand', ['muteEveryone', 'audio']);
    await waitFor(() => bob.evaluate(() => /** @type {any} */ (window).convene.state.micMuted), 'Bob muted by the moderator');
    await call(host, 'executeCommand', ['kickParticipant', bobId]);
    await event(host, 'participantKickedOut', (e) => e.kicked.id === bobId && e.kicked.local === false);
    await event(host, 'participantLeft', (e) => e.id === bobId);
    await waitFor(() => bob.locator('#ended-title', { hasText: 'removed' }).isVisible(), 'Bob told he was removed');

    await call(host, 'executeCommand', ['hangup']);
    assert.deepEqual(await event(host, 'videoConferenceLeft'), { roomName: room });
    await event(host, 'readyToClose');
    assert.equal(await call(host, 'getNumberOfParticipants'), 0);
    await call(host, 'dispose');
    assert.equal(await host.locator('iframe').count(), 0);
    await bob.context().close();
    await host.context().close();
  });

  it('Drupal (mav_jitsi): a moderator locks the room with `password`, a second embed answers passwordRequired', async () => {
    const room = 'DrupalRoom';
    const owner = await hostPage(`${front.url}/external_api.js`);
    await embedMeeting(owner, front.host, { roomName: room, width: '100%', height: '100%', userInfo: { displayName: 'Owner', email: 'o@example.com' }, configOverwrite: { ...NO_PREJOIN, prejoinPageEnabled: false, disableThirdPartyRequests: true } }, EVENTS);
    const joined = await event(owner, 'videoConferenceJoined');
    await event(owner, 'participantRoleChanged', (e) => e.id === joined.id && e.role === 'moderator');
    for (const [command, arg] of [['avatarUrl', 'https://example.com/a.png'], ['subject', 'Drupal meetup'], ['password', 's3cret'], ['sendTones', { tones: '12' }]]) {
      await call(owner, 'executeCommand', [command, arg]);
    }
    await event(owner, 'subjectChange', (e) => e.subject === 'Drupal meetup');

    const visitor = await hostPage(`${front.url}/external_api.js`);
    await embedMeeting(visitor, front.host, { roomName: room, userInfo: { displayName: 'Visitor' }, configOverwrite: NO_PREJOIN }, EVENTS);
    await event(visitor, 'passwordRequired');
    await call(visitor, 'executeCommand', ['password', 's3cret']);
    const visitorJoined = await event(visitor, 'videoConferenceJoined');
    await event(owner, 'participantJoined', (e) => e.id === visitorJoined.id && e.displayName === 'Visitor');
    await call(visitor, 'executeCommand', ['toggleShareScreen']);
    await waitFor(async () => (await call(visitor, 'isSharingScreen')) === true, 'the visitor sharing its screen');
    await call(visitor, 'executeCommand', ['hangup']);
    await event(owner, 'participantLeft', (e) => e.id === visitorJoined.id);
    await owner.context().close();
    await visitor.context().close();
  });

  it('WordPress block: tenant path meeting/<name>, its config overrides and user info', async () => {
    const host = await hostPage(`${front.url}/external_api.js`);
    await embedMeeting(host, front.host, {
      roomName: 'meeting/WpRoom',
      width: 1080,
      height: 720,
      configOverwrite: { ...NO_PREJOIN, startWithAudioMuted: true, startWithVideoMuted: false, enableWelcomePage: false, enableCLosePage: false, toolbarButtons: ['camera', 'chat', 'hangup', 'microphone', 'raisehand', 'tileview', '__end'] },
      interfaceConfigOverwrite: { SHOW_CHROME_EXTENSION_BANNER: false, SHOW_PROMOTIONAL_CLOSE_PAGE: false },
      userInfo: { displayName: 'WP Admin', email: 'admin@wp.example' },
    }, EVENTS);
    const joined = await event(host, 'videoConferenceJoined');
    assert.equal(joined.roomName, 'WpRoom');
    assert.equal(joined.displayName, 'WP Admin');
    const src = await host.evaluate(() => /** @type {any} */ (window).api.getIFrame().src);
    assert.ok(src.startsWith(`${front.url}/meeting/WpRoom#jitsi_meet_external_api_id=`), src);
    assert.equal(await call(host, 'isAudioMuted'), true, 'startWithAudioMuted');
    assert.equal(await call(host, 'isVideoMuted'), false);
    await host.context().close();
  });

  it('the old external_api.min.js of lib-jitsi-meet-dist, over plain HTTP with noSSL', async () => {
    const host = await hostPage(`${site.url}/old_external_api.min.js`);
    const domain = new URL(server.url).host;
    await embedMeeting(host, domain, { roomName: 'OldScript', noSSL: true, configOverwrite: NO_PREJOIN, interfaceConfigOverwrite: {} }, EVENTS);
    await call(host, 'executeCommand', ['displayName', 'Old Script']);
    const joined = await event(host, 'videoConferenceJoined');
    assert.equal(joined.roomName, 'OldScript');
    const bob = await guest('OldScript', 'Bob');
    await event(host, 'participantJoined', (e) => e.displayName === 'Bob');
    await waitFor(async () => (await bob.evaluate((id) => /** @type {any} */ (window).convene.conference.participants.get(id)?.displayName, joined.id)) === 'Old Script', 'the name set by the old script');
    await call(host, 'executeCommand', ['toggleAudio']);
    assert.deepEqual(await event(host, 'audioMuteStatusChanged'), { muted: true });
    assert.equal(await call(host, 'isAudioMuted'), true);
    await call(host, 'executeCommand', ['hangup']);
    await event(host, 'readyToClose');
    await bob.context().close();
    await host.context().close();
  });

  it('Mattermost: an HS256 token signed with the app id and secret, the old bundled script, its commands', async () => {
    const room = 'MattermostCall';
    const host = await hostPage(`${site.url}/old_external_api.min.js`);
    // The plugin's Jitsi URL is http://localhost:<port>: the old script's `noSSL` keeps it on
    // HTTP, and the meeting is on another site than the host page (127.0.0.1), so the browser
    // denies it storage, as third-party storage blocking does.
    const domain = `localhost:${new URL(tokenServer.url).port}`;
    const options = { roomName: room, width: 384, height: 288, noSSL: true, userInfo: { displayName: 'mm-user' }, configOverwrite: { prejoinPageEnabled: false } };
    await embedMeeting(host, domain, { ...options, jwt: mattermostToken(room) }, EVENTS);
    // The plugin sends the topic as the subject right away, then drives the meeting.
    await call(host, 'executeCommand', ['subject', 'Team sync']);
    const joined = await event(host, 'videoConferenceJoined');
    assert.equal(joined.roomName, room);
    for (const command of ['toggleTileView', 'toggleFilmStrip']) await call(host, 'executeCommand', [command]);
    await call(host, 'executeCommand', ['hangup']);
    await event(host, 'readyToClose');

    const forged = await hostPage(`${site.url}/old_external_api.min.js`);
    await embedMeeting(forged, domain, { ...options, jwt: mattermostToken(room, 'wrong secret') }, EVENTS);
    await waitFor(() => forged.frameLocator('iframe').locator('#ended-title', { hasText: 'Authentication failed' }).isVisible(), 'the forged token refused');
    assert.equal((await recorded(forged, 'videoConferenceJoined')).length, 0);
    await host.context().close();
    await forged.context().close();
  });

  it('@jitsi/react-sdk renders JitsiMeeting from the tenant path script', async () => {
    const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
    const scripts = /** @type {string[]} */ ([]);
    page.on('request', (r) => {
      if (r.frame() === page.mainFrame() && r.url().includes('external_api')) scripts.push(r.url());
    });
    await page.goto(`${site.url}/react.html?domain=${front.host}&room=acme/ReactRoom&name=Reactor`);
    const joined = await waitFor(async () => (await recorded(page, 'videoConferenceJoined'))[0], 'JitsiMeeting joining');
    assert.equal(joined.roomName, 'ReactRoom');
    assert.equal(joined.displayName, 'Reactor');
    assert.deepEqual(scripts, [`${front.url}/acme/external_api.js`]);
    await page.evaluate(() => /** @type {any} */ (window).api.executeCommand('hangup'));
    await waitFor(async () => (await recorded(page, 'readyToClose')).length, 'onReadyToClose');
    await page.context().close();
  });

  it('the stock app\'s external_api.min.js (JITSI_MEET_DIR)', { skip: process.env.JITSI_MEET_DIR ? false : 'JITSI_MEET_DIR is not set: the stock external_api.min.js is not tried' }, async () => {
    const host = await hostPage(`${site.url}/stock_external_api.min.js`);
    await embedMeeting(host, front.host, { roomName: 'StockScript', userInfo: { displayName: 'Stock' }, configOverwrite: NO_PREJOIN }, EVENTS);
    const joined = await event(host, 'videoConferenceJoined');
    assert.equal(joined.displayName, 'Stock');
    assert.equal(await call(host, 'isVideoMuted'), false);
    await call(host, 'executeCommand', ['toggleVideo']);
    assert.deepEqual(await event(host, 'videoMuteStatusChanged'), { muted: true });
    await call(host, 'executeCommand', ['toggleRaiseHand']);
    await event(host, 'raiseHandUpdated', (e) => e.id === joined.id && e.handRaised > 0);
    assert.equal((await call(host, 'getRoomsInfo')).rooms[0].participants.length, 1);
    await call(host, 'executeCommand', ['hangup']);
    await event(host, 'readyToClose');
    await host.context().close();
  });
});
