// The stock lib-jitsi-meet (`LJM_BUNDLE`, built from upstream, never in the repository)
// on its default settings (on Chromium: AV1 with SVC, one SSRC per source) in a room of
// Convene, from a page of another origin. Skipped when LJM_BUNDLE is unset.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { endpointId, launchChromium, receivedMedia, requireIsolatedNetwork, startConvene, throttle, unthrottle, waitFor } from '../support/harness.js';
import { skipUnlessSet, startLjmPageServer, stockPath, stockReception } from '../support/stock.js';

const ROOM = 'stock-ljm';
const NAMES = ['Alice', 'Bob', 'Carol'];
const MEDIA_TIMEOUT = 45_000;
const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

describe('the stock lib-jitsi-meet on its defaults', { skip: skipUnlessSet('LJM_BUNDLE', 'the stock lib-jitsi-meet'), timeout: 420_000 }, () => {
  /** @type {Awaited<ReturnType<typeof startConvene>>} */
  let server;
  /** @type {Awaited<ReturnType<typeof startLjmPageServer>>} */
  let pageServer;
  /** @type {import('playwright-core').Browser} */
  let browser;
  /** @type {import('playwright-core').Page[]} */
  const pages = [];
  /** @type {string[]} */
  const ids = [];
  /** Console lines of the stock pages that say the keep-alive failed. @type {string[]} */
  const keepAliveFailures = [];
  /** Keep-alive probes (plain GETs of the WebSocket URL) answered. */
  let keepAlives = 0;
  let failed = false;

  before(async () => {
    requireIsolatedNetwork();
    server = await startConvene();
    pageServer = await startLjmPageServer(stockPath('LJM_BUNDLE'), server.url);
    browser = await launchChromium();
  });

  after(async () => {
    if (failed) console.log(`--- convene log ---\n${server?.log().slice(-20_000)}`);
    await browser?.close();
    pageServer?.close();
    await server?.stop();
  });

  /** @template T @param {() => Promise<T>} fn */
  const track = async (fn) => {
    try {
      return await fn();
    } catch (err) {
      failed = true;
      for (const page of pages) if (!page.isClosed()) console.log(JSON.stringify(await stockReception(page)));
      throw err;
    }
  };

  /** Opens the test page as `name` and joins; the page and its endpoint id. @param {string} name */
  const join = async (name) => {
    const page = await (await browser.newContext()).newPage();
    page.on('console', (m) => {
      if (/keep ?alive failed/i.test(m.text())) keepAliveFailures.push(`[${name}] ${m.text()}`);
      if (m.type() === 'error') console.log(`[${name}] ${m.text().slice(0, 300)}`);
    });
    page.on('pageerror', (e) => console.log(`[${name}] page error: ${e.message}`));
    page.on('response', (r) => {
      if (r.request().resourceType() === 'fetch' && new URL(r.url()).pathname === '/xmpp-websocket') keepAlives += 1;
      if (r.status() >= 400) console.log(`[${name}] ${r.status()} for ${r.url()}`);
    });
    await page.goto(`${pageServer.url}/?room=${ROOM}&name=${name}`);
    await page.waitForFunction(() => /** @type {any} */ (window).stock);
    const id = await page.evaluate(() => /** @type {any} */ (window).stock.join());
    return { page, id: /** @type {string} */ (id) };
  };

  /** Until every page decodes `frames` more camera frames from, and hears more sound (audio energy) from, every other. */
  const everyoneReceivesEveryone = async (frames = 20) => {
    const start = await Promise.all(pages.map((p) => stockReception(p)));
    await Promise.all(
      pages.map((page, i) =>
        waitFor(
          async () => {
            const now = await stockReception(page);
            return ids
              .filter((id) => id !== ids[i])
              .every((id) => {
                const [from, was] = [now.from[id], start[i].from[id]];
                return from && from.frames - (was?.frames ?? 0) >= frames && from.audioEnergy > (was?.audioEnergy ?? 0);
              });
          },
          `${NAMES[i]} decoding ${frames} frames of, and hearing, every other`,
          MEDIA_TIMEOUT,
        ),
      ),
    );
  };

  it('three participants each decode at least 20 frames of every other’s video and hear every other', () =>
    track(async () => {
      for (const name of NAMES) {
        const { page, id } = await join(name);
        pages.push(page);
        ids.push(id);
      }
      assert.equal(new Set(ids).size, 3);
      await everyoneReceivesEveryone();
      const alice = await stockReception(pages[0]);
      console.log(`Alice sends ${JSON.stringify(alice.sent)}; receives ${JSON.stringify(alice.from)}`);
    }));

  it('gives a receiver constrained to 180p the low spatial layer', () =>
    track(async () => {
      const [, bob, carol] = pages;
      await carol.evaluate(() => /** @type {any} */ (window).stock.setReceiverConstraints({ lastN: -1, defaultConstraints: { maxHeight: 180 }, constraints: {} }));
      try {
        await waitFor(async () => ((await stockReception(carol)).from[ids[0]]?.height ?? 0) <= 270, 'Carol receiving a low layer of Alice', 20_000);
        const [carolStart, bobView] = [await stockReception(carol), await stockReception(bob)];
        await sleep(3000);
        const carolEnd = await stockReception(carol);
        const low = carolEnd.from[ids[0]];
        assert.ok(low.height > 0 && low.height < bobView.from[ids[0]].height, `Carol gets ${low.height}p, Bob ${bobView.from[ids[0]].height}p`);
        assert.ok(low.frames - carolStart.from[ids[0]].frames >= 20, `Carol's frames of Alice in 3 s: ${low.frames - carolStart.from[ids[0]].frames}`);
      } finally {
        await carol.evaluate(() => /** @type {any} */ (window).stock.setReceiverConstraints({ lastN: -1, defaultConstraints: { maxHeight: 2160 }, constraints: {} }));
      }
    }));

  it('gives a receiver behind a slow downlink lower layers, and its video goes on', () =>
    track(async () => {
      const bob = pages[1];
      const before = await stockReception(bob);
      const senders = [ids[0], ids[2]];
      assert.ok(before.port > 0, 'Bob’s media port');
      throttle(before.port, 500);
      try {
        await waitFor(
          async () => {
            const now = await stockReception(bob);
            return senders.some((id) => now.from[id].height > 0 && now.from[id].height < before.from[id].height);
          },
          `Bob receiving lower layers than ${senders.map((id) => before.from[id].height)} behind 500 kb/s`,
          30_000,
        );
        const start = await stockReception(bob);
        await sleep(8000);
        const end = await stockReception(bob);
        const gained = senders.map((id) => end.from[id].frames - start.from[id].frames);
        assert.ok(gained.every((n) => n >= 20), `Bob's frames in 8 s behind 500 kb/s: ${gained}`);
      } finally {
        unthrottle();
      }
    }));

  it('stops the flow while a participant is muted and restarts it on unmute', () =>
    track(async () => {
      const [alice, bob] = pages;
      const bobId = ids[1];
      await bob.evaluate(async () => {
        await /** @type {any} */ (window).stock.mute('audio', true);
        await /** @type {any} */ (window).stock.mute('video', true);
      });
      await sleep(2000);
      const muted = (await stockReception(alice)).from[bobId];
      await sleep(3000);
      const later = (await stockReception(alice)).from[bobId];
      assert.ok(later.frames - muted.frames <= 3, `video kept coming: ${muted.frames} → ${later.frames}`);
      // A muted microphone sends silence (lib-jitsi-meet disables the track): no energy.
      assert.ok(later.audioEnergy - muted.audioEnergy < 1e-4, `sound kept coming: ${muted.audioEnergy} → ${later.audioEnergy}`);
      await bob.evaluate(async () => {
        await /** @type {any} */ (window).stock.mute('audio', false);
        await /** @type {any} */ (window).stock.mute('video', false);
      });
      await everyoneReceivesEveryone(10);
    }));

  it('shows a screen share as a second source', () =>
    track(async () => {
      const [alice, bob, carol] = pages;
      await carol.evaluate(() => /** @type {any} */ (window).stock.shareScreen());
      for (const page of [alice, bob]) {
        await waitFor(async () => ((await stockReception(page)).from[ids[2]]?.screenFrames ?? 0) >= 10, 'decoded screen-share frames from Carol', MEDIA_TIMEOUT);
      }
      // The camera goes on beside it.
      const camera = (await stockReception(alice)).from[ids[2]].frames;
      await waitFor(async () => (await stockReception(alice)).from[ids[2]].frames > camera + 10, 'Carol’s camera beside her screen');
      console.log(`Carol sends, while sharing: ${JSON.stringify((await stockReception(carol)).sent)}`);
      await carol.evaluate(() => /** @type {any} */ (window).stock.stopScreen());
    }));

  it('answers the WebSocket keep-alive across origins (CORS)', () =>
    track(async () => {
      // The pages have probed every 2 s since they joined.
      assert.ok(keepAlives >= 3, `keep-alive probes answered: ${keepAlives}`);
      assert.deepEqual(keepAliveFailures, []);
    }));

  it('shares a room with Convene’s own client: each sees and hears the other', () =>
    track(async () => {
      const dana = await (await browser.newContext()).newPage();
      dana.on('pageerror', (e) => console.log(`[Dana] page error: ${e.message}`));
      await dana.goto(`${server.url}/${ROOM}#config.prejoinConfig.enabled=false&userInfo.displayName="Dana"`);
      try {
        const danaId = await waitFor(() => endpointId(dana), 'Dana joining');
        await waitFor(
          async () => {
            const media = await receivedMedia(dana);
            return ids.every((id) => (media[id]?.frames ?? 0) >= 20 && (media[id]?.audioPackets ?? 0) > 0);
          },
          'Convene’s client decoding and hearing the stock clients',
          MEDIA_TIMEOUT,
        );
        for (const [i, page] of pages.entries()) {
          await waitFor(
            async () => {
              const from = (await stockReception(page)).from[danaId];
              return from && from.frames >= 20 && from.audioEnergy > 0;
            },
            `${NAMES[i]} decoding and hearing Convene’s client`,
            MEDIA_TIMEOUT,
          );
        }
        const sent = await Promise.all(pages.map(async (page) => (await stockReception(page)).sent.find((e) => e.height > 0)));
        console.log(`with Convene's client in the room, the stock clients send ${JSON.stringify(sent)}`);
      } finally {
        await dana.close();
      }
    }));

  it('removes a participant who leaves, and the others go on', () =>
    track(async () => {
      const [alice, bob, carol] = pages;
      await carol.evaluate(() => /** @type {any} */ (window).stock.leave());
      for (const page of [alice, bob]) {
        await waitFor(async () => !(await page.evaluate(() => /** @type {any} */ (window).stock.participants())).includes(ids[2]), 'Carol gone', 15_000);
      }
      // Alice still hears Bob (video is the first test's).
      const before = (await stockReception(alice)).from[ids[1]].audioEnergy;
      await waitFor(async () => (await stockReception(alice)).from[ids[1]].audioEnergy > before, 'Alice still hearing Bob');
    }));
});
