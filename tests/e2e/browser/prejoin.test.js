// The pages a person sees before a meeting, in a real headless Chromium against a real
// Convene server: the home page, and the pre-join screen when the camera is refused.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { endpointId, launchChromium, receivedMedia, requireIsolatedNetwork, startConvene, waitFor } from '../support/harness.js';

describe('home and pre-join pages', { timeout: 120_000 }, () => {
  /** @type {Awaited<ReturnType<typeof startConvene>>} */
  let server;

  before(async () => {
    requireIsolatedNetwork();
    server = await startConvene();
  });

  after(async () => {
    await server?.stop();
  });

  it('goes from the home page to the room page of the name typed', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(server.url);
      await page.fill('#room-name', 'Team Sync');
      await page.click('button[type=submit]');
      await page.waitForURL(`${server.url}/Team-Sync`);
      await page.locator('#prejoin').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#prejoin-title').textContent(), 'Join “Team-Sync”');
      // With the fake devices allowed, the preview plays and no error is shown.
      await page.waitForFunction(() => /** @type {HTMLVideoElement} */ (document.getElementById('preview')).videoWidth > 0);
      assert.equal(await page.locator('#media-error').isHidden(), true);
      assert.ok((await page.locator('#cam-select option').count()) >= 1);
      // The fake microphone beeps: the level meter moves.
      await page.waitForFunction(() => parseFloat(/** @type {HTMLElement} */ (document.getElementById('mic-level')).style.width) > 0, undefined, { timeout: 10_000 });
    } finally {
      await browser.close();
    }
  });

  it('says clearly that the camera and microphone were denied, and still lets one join', async () => {
    // No fake-UI auto-accept: the permission prompt is refused.
    const browser = await launchChromium(['--deny-permission-prompts']);
    try {
      const page = await browser.newPage();
      await page.goto(`${server.url}/denied-room#userInfo.displayName="Dana"`);
      const error = page.locator('#media-error');
      await error.waitFor({ state: 'visible', timeout: 15_000 });
      assert.match(/** @type {string} */ (await error.textContent()), /camera and microphone was denied/i);
      assert.equal(await page.inputValue('#name'), 'Dana');
      await page.click('#join');
      await page.locator('#meeting').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#btn-cam').getAttribute('aria-pressed'), 'true');
      await page.click('#btn-cam');
      await page.locator('#banner', { hasText: 'No camera is available' }).waitFor({ state: 'visible' });
    } finally {
      await browser.close();
    }
  });

  it('joins through the pre-join screen with the camera off, and turns it on later', async () => {
    const browser = await launchChromium();
    try {
      const pat = await (await browser.newContext()).newPage();
      await pat.goto(`${server.url}/prejoin-call`);
      await pat.locator('#prejoin').waitFor({ state: 'visible' });
      await pat.fill('#name', 'Pat');
      await pat.waitForFunction(() => /** @type {HTMLVideoElement} */ (document.getElementById('preview')).videoWidth > 0);
      await pat.click('#pre-cam');
      await pat.locator('#preview-off').waitFor({ state: 'visible' });
      await pat.click('#join');
      const quinn = await (await browser.newContext()).newPage();
      await quinn.goto(`${server.url}/prejoin-call#config.prejoinConfig.enabled=false&userInfo.displayName="Quinn"`);
      const patId = await waitFor(() => endpointId(pat), 'Pat in the room');

      // Quinn sees Pat by name, with the avatar instead of video, and hears her.
      const tile = quinn.locator(`.tile[data-key="${patId}"]`);
      await tile.locator('.name', { hasText: 'Pat' }).waitFor({ timeout: 30_000 });
      await waitFor(async () => ((await receivedMedia(quinn))[patId]?.audioPackets ?? 0) > 0, "Pat's audio", 60_000);
      assert.equal(await tile.locator('.avatar').isVisible(), true);
      assert.equal(((await receivedMedia(quinn))[patId]?.frames ?? 0), 0, 'no video while the camera is off');

      // Camera on: the sender attaches the track to the already negotiated m-line.
      await pat.click('#btn-cam');
      await waitFor(async () => ((await receivedMedia(quinn))[patId]?.frames ?? 0) > 0, "Pat's video", 60_000);
      await tile.locator('video').waitFor({ state: 'visible', timeout: 10_000 });
    } finally {
      await browser.close();
    }
  });

  it('rejects a hostile hash without breaking the page', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(`${server.url}/hash-room#config.__proto__.x=1&userInfo.displayName=%3Cimg%20src%3Dx%3E&config.prejoinConfig.enabled=true`);
      await page.locator('#prejoin').waitFor({ state: 'visible' });
      assert.equal(await page.inputValue('#name'), '<img src=x>');
      assert.equal(await page.evaluate(() => /** @type {any} */ ({}).x), undefined);
    } finally {
      await browser.close();
    }
  });
});
