// Stock lib-jitsi-meet (LJM_BUNDLE, built outside the repository) signs in with Jitsi
// tokens in a real headless Chromium: an HS256 token minted by `convene token`, and an
// RS256 token whose public key the test serves as a key server on loopback. Each joins the
// room its token opens; a bad signature and another room are refused with the errors the
// library reports.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';

import { conveneBinary, launchChromium, requireIsolatedNetwork, startConvene } from '../support/harness.js';

const LJM_BUNDLE = process.env.LJM_BUNDLE;
const SECRET = 'e2e shared secret';
const KID = 'vpaas-magic-cookie-e2e/key1';

/** @param {string | Buffer} data */
const b64url = (data) => Buffer.from(data).toString('base64url');

/** An RS256 token for `room` signed with `privateKey`, as a JaaS-style issuer mints it. */
function rs256(privateKey, room, name) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: KID }));
  const body = b64url(JSON.stringify({
    iss: 'e2e', aud: 'jitsi', sub: 'localhost', room, nbf: now - 5, exp: now + 600,
    context: { user: { id: name.toLowerCase(), name } },
  }));
  const signature = sign('sha256', Buffer.from(`${head}.${body}`), privateKey);
  return `${head}.${body}.${b64url(signature)}`;
}

describe('lib-jitsi-meet with Jitsi tokens', { skip: LJM_BUNDLE ? false : 'LJM_BUNDLE is not set (path to a built lib-jitsi-meet.min.js)', timeout: 120_000 }, () => {
  /** @type {Awaited<ReturnType<typeof startConvene>>} */
  let server;
  /** @type {http.Server} */
  let keyServer;
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

  before(async () => {
    requireIsolatedNetwork();
    const keyFile = `/${createHash('sha256').update(KID).digest('hex')}.pem`;
    keyServer = http.createServer((req, res) => {
      if (req.url === keyFile) res.end(publicKey.export({ type: 'spki', format: 'pem' }));
      else res.writeHead(404).end();
    });
    keyServer.listen(0, '127.0.0.1');
    await once(keyServer, 'listening');
    const { port } = /** @type {import('node:net').AddressInfo} */ (keyServer.address());
    server = await startConvene({
      config: [
        '[auth.token]',
        'enabled = true',
        'app_id = "e2e"',
        `app_secret = "${SECRET}"`,
        `key_server = "http://127.0.0.1:${port}"`,
      ].join('\n'),
    });
  });

  after(async () => {
    await server?.stop();
    keyServer?.close();
  });

  /** `convene token`: the CLI an operator or a script would use. @param {string} room */
  const minted = (room, name) =>
    execFileSync(conveneBinary(), ['--config', server.configPath, 'token', '--room', room, '--name', name], { encoding: 'utf8' }).trim();

  /**
   * Connects with `token` and joins `room`; resolves to what happened, as the library saw it.
   * @param {import('playwright-core').Page} page @param {string} token @param {string} room
   */
  function join(page, token, room) {
    const ws = server.url.replace('http', 'ws') + '/xmpp-websocket';
    return page.evaluate(async ({ ws, token, room }) => {
      /** @type {any} */
      const JitsiMeetJS = /** @type {any} */ (window).JitsiMeetJS;
      JitsiMeetJS.init({});
      JitsiMeetJS.setLogLevel(JitsiMeetJS.logLevels.ERROR);
      const { connection: connectionEvents, conference: conferenceEvents } = JitsiMeetJS.events;
      const options = {
        hosts: { domain: 'localhost', muc: 'conference.localhost', focus: 'focus.localhost' },
        serviceUrl: `${ws}?room=${room}`,
      };
      const connection = new JitsiMeetJS.JitsiConnection(null, token, options);
      const connected = await new Promise((resolve) => {
        connection.addEventListener(connectionEvents.CONNECTION_ESTABLISHED, () => resolve({ ok: true }));
        connection.addEventListener(connectionEvents.CONNECTION_FAILED, (/** @type {string} */ error, /** @type {string} */ message) =>
          resolve({ ok: false, error, message }));
        connection.connect();
      });
      if (!connected.ok) return { stage: 'connection', ...connected };
      const conference = connection.initJitsiConference(room, {});
      const joined = await new Promise((resolve) => {
        // The focus grants the owner right just after the join (auto-owner): wait for it.
        conference.on(conferenceEvents.CONFERENCE_JOINED, async () => {
          for (let i = 0; i < 50 && conference.getRole() !== 'moderator'; i++) await new Promise((r) => setTimeout(r, 100));
          resolve({ ok: true, role: conference.getRole() });
        });
        conference.on(conferenceEvents.CONFERENCE_FAILED, (/** @type {string} */ error) => resolve({ ok: false, error }));
        conference.join();
      });
      await conference.leave().catch(() => undefined);
      connection.disconnect();
      return { stage: 'conference', ...joined };
    }, { ws, token, room });
  }

  /** A blank page with the stock library loaded. */
  async function ljmPage(browser) {
    const page = await browser.newPage();
    await page.goto(`${server.url}/config.js`);
    await page.addScriptTag({ content: readFileSync(/** @type {string} */ (LJM_BUNDLE), 'utf8') });
    return page;
  }

  it('joins the room of an HS256 token from `convene token`, and no other', async () => {
    const browser = await launchChromium();
    try {
      const page = await ljmPage(browser);
      const token = minted('standup', 'Alice');
      assert.deepEqual(await join(page, token, 'standup'), { stage: 'conference', ok: true, role: 'moderator' });
      const other = await join(await ljmPage(browser), token, 'other');
      assert.equal(other.stage, 'conference');
      assert.equal(other.ok, false);
      assert.equal(other.error, 'conference.connectionError.notAllowed');
    } finally {
      await browser.close();
    }
  });

  it('joins with an RS256 token whose key comes from the key server', async () => {
    const browser = await launchChromium();
    try {
      const result = await join(await ljmPage(browser), rs256(privateKey, 'standup', 'Bob'), 'standup');
      assert.equal(result.ok, true, JSON.stringify(result));
    } finally {
      await browser.close();
    }
  });

  it('reports a refused token as lib-jitsi-meet knows it, with the reason', async () => {
    const browser = await launchChromium();
    try {
      const forged = minted('standup', 'Mallory').replace(/\.[^.]+$/, `.${b64url('not the signature')}`);
      const result = await join(await ljmPage(browser), forged, 'standup');
      assert.deepEqual(result, { stage: 'connection', ok: false, error: 'connection.passwordRequired', message: 'Invalid signature' });
    } finally {
      await browser.close();
    }
  });
});
