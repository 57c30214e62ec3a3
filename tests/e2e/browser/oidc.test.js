// OpenID Connect sign-in in a real headless Chromium, against `oidc-provider` (the
// certified OpenID provider, npm) started here on loopback: Convene's client on a secure
// domain shows its sign-in screen; a guest waits for the host; the host signs in at the
// provider (code flow with PKCE), comes back with a Jitsi token and opens the meeting as a
// moderator; the guest then joins. Refusals: a bad state, a provider that says no, and ID
// tokens with a wrong nonce, audience or issuer, or expired (the provider's own token
// answer, re-signed with the provider's own key); a wrong password of a local account.
// With JITSI_MEET_DIR, the stock app's `tokenAuthUrl` sign-in lands in the meeting too.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { once } from 'node:events';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

import { conveneBinary, launchChromium, requireIsolatedNetwork, startConvene, waitFor } from '../support/harness.js';

const CLIENT_ID = 'convene';
const CLIENT_SECRET = 'e2e client secret';
const APP_SECRET = 'e2e app secret';
/** The provider's users: `groups` decides who moderates. */
const USERS = {
  alice: { name: 'Alice Host', email: 'alice@example.test', groups: ['hosts'] },
  bob: { name: 'Bob Staff', email: 'bob@example.test', groups: ['staff'] },
};

/** Convene's configuration: a secure domain with OIDC, tokens and `extra` web settings. @param {string} issuer @param {string} [extra] */
function configText(issuer, extra = '') {
  return [
      '[web]',
      'prejoin = false',
      extra,
      '[auth]',
      'secure_domain = true',
      'moderator = "claim"',
      '[auth.token]',
      'enabled = true',
      'app_id = "convene"',
      `app_secret = "${APP_SECRET}"`,
      '[auth.oidc]',
      'enabled = true',
      `issuer = "${issuer}"`,
      `client_id = "${CLIENT_ID}"`,
      `client_secret = "${CLIENT_SECRET}"`,
      'scopes = ["profile", "email", "groups"]',
      'button_label = "Sign in with Example ID"',
      'moderator_claim = "groups"',
      'moderator_values = ["hosts"]',
    ].join('\n');
}

describe('OpenID Connect sign-in', { timeout: 180_000 }, () => {
  /** @type {Awaited<ReturnType<typeof startConvene>>} */
  let server;
  /** @type {Awaited<ReturnType<typeof launchChromium>>} */
  let browser;
  /** @type {http.Server} */
  let providerServer;
  /** @type {Record<string, unknown> | undefined} what the next token answer's ID token gets changed to */
  let tamper;
  /** The provider rotated its keys: it publishes a second one and signs with it. */
  let rotated = false;
  /** @type {string} */
  let issuer;

  before(async () => {
    requireIsolatedNetwork();
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), kid: 'e2e-key', use: 'sig', alg: 'RS256' };
    const next = await generateKeyPair('RS256', { extractable: true });
    const nextJwk = { ...(await exportJWK(next.publicKey)), kid: 'e2e-key-2', use: 'sig', alg: 'RS256' };
    /** @type {((req: http.IncomingMessage, res: http.ServerResponse) => void) | undefined} */
    let handler;
    providerServer = http.createServer((req, res) => (handler ? handler(req, res) : res.writeHead(503).end()));
    providerServer.listen(0, '127.0.0.1');
    await once(providerServer, 'listening');
    const { port } = /** @type {import('node:net').AddressInfo} */ (providerServer.address());
    issuer = `http://127.0.0.1:${port}`;
    // The provider needs Convene's callback URL, Convene the issuer: the provider is made
    // once Convene listens (it reads the discovery document at the first sign-in only).
    /** @param {string[]} redirectUris */
    const startProvider = (redirectUris) => {
      const provider = new Provider(issuer, {
        clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: redirectUris, grant_types: ['authorization_code'], response_types: ['code'] }],
        jwks: { keys: [jwk] },
        claims: { openid: ['sub'], profile: ['name'], email: ['email'], groups: ['groups'] },
        conformIdTokenClaims: false,
        findAccount: async (_ctx, sub) => ({
          accountId: sub,
          claims: async () => ({ sub, ...(USERS[/** @type {keyof typeof USERS} */ (sub)] ?? { name: sub, groups: [] }) }),
        }),
        features: { devInteractions: { enabled: true } },
        pkce: { required: () => true },
        cookies: { keys: ['e2e cookie key'] },
      });
      // Refusals the provider will not produce: its own token answer, with the ID token's
      // claims changed and signed again with its own key. And a key rotation: a second key
      // in its JWKS, the ID token signed with it.
      provider.use(async (ctx, proceed) => {
        await proceed();
        const body = /** @type {any} */ (ctx.body);
        if (ctx.path === '/jwks' && rotated) body.keys.push(nextJwk);
        if (ctx.path === '/token' && (tamper || rotated) && body?.id_token) {
          const claims = { ...decodeJwt(body.id_token), ...tamper };
          const [kid, key] = rotated ? [nextJwk.kid, next.privateKey] : [jwk.kid, privateKey];
          body.id_token = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(key);
        }
      });
      handler = provider.callback();
    };
    server = await startConvene({ config: configText(issuer) });
    startProvider([`${server.url}/auth/oidc/callback`]);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    providerServer?.close();
  });

  /** A new browser context (its own cookies: a new provider session) on `url`. @param {string} url */
  async function open(url) {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (err) => console.log(`page error: ${err.message}`));
    await page.goto(url);
    return page;
  }

  /** At the provider: signs in as `login` and consents. @param {import('playwright-core').Page} page @param {string} login */
  async function providerLogin(page, login) {
    await page.waitForURL((url) => url.href.startsWith(issuer));
    await page.fill('input[name=login]', login);
    await page.fill('input[name=password]', 'any password');
    await page.click('button[type=submit]');
    await page.click('button:has-text("Continue")');
  }

  /** What the page's conference says of us. @param {import('playwright-core').Page} page */
  const own = (page) =>
    page.evaluate(() => {
      /** @type {any} */
      const convene = /** @type {any} */ (window).convene;
      const conference = convene.conference;
      return { joined: !!conference?.session, waiting: convene.state.waitingForHost, role: conference?.role, jid: conference?.xmpp.jid ?? '', ended: document.getElementById('ended')?.hidden === false, banner: document.getElementById('banner')?.textContent ?? '' };
    });

  /** Roles of everyone in the room as `page` sees them, by display name. @param {import('playwright-core').Page} page */
  const roles = (page) =>
    page.evaluate(() => {
      /** @type {any} */
      const conference = /** @type {any} */ (window).convene.conference;
      return Object.fromEntries([...conference.participants.values()].map((p) => [p.displayName, p.role]));
    });

  it('offers sign-in; a guest waits for the host, who signs in through the provider, and then joins', async () => {
    const guest = await open(`${server.url}/standup`);
    await guest.waitForSelector('#signin:not([hidden])');
    assert.equal(await guest.textContent('#signin-oidc'), 'Sign in with Example ID');
    assert.equal(await guest.isVisible('#signin-form'), true, 'user name and password are offered on a secure domain');
    await guest.click('#signin-guest');
    await waitFor(async () => (await own(guest)).waiting, 'the guest waiting for the host');
    assert.match((await own(guest)).banner, /Waiting for the host/);
    assert.match((await own(guest)).jid, /@guest\.localhost\//);

    const host = await open(`${server.url}/standup`);
    await host.click('#signin-oidc');
    await providerLogin(host, 'alice');
    await host.waitForURL(`${server.url}/standup`);
    await waitFor(async () => (await own(host)).joined, 'the host in the meeting');
    assert.equal((await own(host)).role, 'moderator', 'the "hosts" group moderates');
    assert.match((await own(host)).jid, /@localhost\//);

    await waitFor(async () => (await own(guest)).joined, 'the guest let in once the host is there', 20_000);
    assert.equal((await own(guest)).waiting, false);
    await waitFor(async () => {
      const seen = await roles(guest);
      return seen['Alice Host'] === 'moderator';
    }, 'the guest seeing the host by the name from the provider');
    await guest.context().close();
    await host.context().close();
  });

  it('a signed-in user outside the moderator group joins as a participant', async () => {
    const host = await open(`${server.url}/standup2`);
    await host.click('#signin-oidc');
    await providerLogin(host, 'alice');
    await waitFor(async () => (await own(host)).joined, 'the host in the meeting');
    const staff = await open(`${server.url}/standup2`);
    await staff.click('#signin-oidc');
    await providerLogin(staff, 'bob');
    await waitFor(async () => (await own(staff)).joined, 'bob in the meeting');
    assert.equal((await own(staff)).role, 'participant');
    await staff.context().close();
    await host.context().close();
  });

  it('refuses a bad state and a sign-in the provider refused, with a way back', async () => {
    const page = await open(`${server.url}/auth/oidc/callback?state=forged.state&code=abc`);
    assert.match(await page.textContent('#signin-error') ?? '', /This sign-in is not valid: no sign-in is pending/);
    const status = (await page.request.get(`${server.url}/auth/oidc/callback?code=abc`)).status();
    assert.equal(status, 400);

    await page.goto(`${server.url}/standup3`);
    await page.click('#signin-oidc');
    await page.waitForURL((url) => url.href.startsWith(issuer));
    await page.click('text=[ Cancel ]');
    await page.waitForSelector('#signin-error');
    assert.match(await page.textContent('#signin-error') ?? '', /The sign-in provider refused the sign-in: End-User aborted interaction/);
    assert.equal(await page.getAttribute('a.button', 'href'), '/standup3');
    await page.context().close();
  });

  for (const [what, change, reason] of /** @type {[string, Record<string, unknown>, RegExp][]} */ ([
    ['a wrong nonce', { nonce: 'not-the-one-sent' }, /the ID token is not valid: .*nonce/i],
    ['a wrong audience', { aud: 'another-client' }, /the ID token is not valid: .*audience/i],
    ['a wrong issuer', { iss: 'http://127.0.0.1:1' }, /the ID token is not valid: .*issuer/i],
    ['an expired ID token', { exp: Math.floor(Date.now() / 1000) - 600, iat: Math.floor(Date.now() / 1000) - 1200 }, /the ID token is not valid: .*expired/i],
  ])) {
    it(`refuses an ID token with ${what}`, async () => {
      tamper = change;
      try {
        const page = await open(`${server.url}/standup4`);
        await page.click('#signin-oidc');
        await providerLogin(page, 'alice');
        await page.waitForSelector('#signin-error');
        assert.match(await page.textContent('#signin-error') ?? '', reason);
        assert.equal(page.url().includes('jwt='), false);
        await page.context().close();
      } finally {
        tamper = undefined;
      }
    });
  }

  it('follows a key rotation: an ID token signed with a key new to the JWKS', async () => {
    rotated = true;
    try {
      const page = await open(`${server.url}/standup6`);
      await page.click('#signin-oidc');
      await providerLogin(page, 'alice');
      await waitFor(async () => (await own(page)).joined, 'alice in the meeting after the rotation');
      await page.context().close();
    } finally {
      rotated = false;
    }
  });

  it('tells an expired token and a wrong password in plain words', async () => {
    const page = await open(`${server.url}/standup5`);
    const expired = execFileSync(conveneBinary(), ['--config', server.configPath, 'token', '--room', 'standup5', '--name', 'Late', '--valid-secs', '0'], { encoding: 'utf8' }).trim();
    await new Promise((r) => setTimeout(r, 1100));
    await page.goto(`${server.url}/standup5?jwt=${expired}`);
    await page.waitForSelector('#ended:not([hidden])');
    assert.equal(await page.textContent('#ended-title'), 'Sign-in expired');
    assert.equal(await page.textContent('#rejoin'), 'Sign in again');

    const data = path.join(path.dirname(server.configPath), 'data');
    execFileSync(conveneBinary(), ['--config', server.configPath, '--data-dir', data, '--domain', 'localhost', 'user', 'add', 'carol'], { input: 'right password\n' });
    await page.goto(`${server.url}/standup5`);
    await page.fill('#signin-user', 'carol');
    await page.fill('#signin-password', 'wrong password');
    await page.press('#signin-password', 'Enter');
    await page.waitForSelector('#ended:not([hidden])');
    assert.equal(await page.textContent('#ended-reason'), 'Wrong user name or password.');

    await page.goto(`${server.url}/standup5`);
    await page.fill('#signin-user', 'carol');
    await page.fill('#signin-password', 'right password');
    await page.click('#signin-form button[type=submit]');
    await waitFor(async () => (await own(page)).joined, 'carol in the meeting with her password');
    assert.match((await own(page)).jid, /^carol@localhost\//);
    await page.context().close();
  });

  it('the stock app: tokenAuthUrl signs in and comes back to the meeting with ?jwt=', { skip: process.env.JITSI_MEET_DIR ? false : 'JITSI_MEET_DIR is not set (a built Jitsi Meet app folder)' }, async () => {
    // The same server (port, callback URL) serving the stock app instead: the last test.
    writeFileSync(server.configPath, configText(issuer, `jitsi_meet_dir = "${process.env.JITSI_MEET_DIR}"`));
    await server.restart();
    const configJs = await (await fetch(`${server.url}/config.js`)).text();
    assert.match(configJs, /"tokenAuthUrl":"http:\/\/127\.0\.0\.1:\d+\/auth\/oidc\/login\?room=\{room\}"/);
    assert.match(configJs, /"anonymousdomain":"guest\.localhost"/);
    const url = /** @type {string} */ (/"tokenAuthUrl":"([^"]+)"/.exec(configJs)?.[1]).replace('{room}', 'stockroom');
    const page = await open(url);
    await providerLogin(page, 'alice');
    await page.waitForURL(/\/stockroom\?jwt=/);
    await waitFor(
      () => page.evaluate(() => !!(/** @type {any} */ (window).APP?.conference?._room?.isJoined())),
      'the stock app in the meeting with its token',
      60_000,
    );
    await page.context().close();
  });
});
