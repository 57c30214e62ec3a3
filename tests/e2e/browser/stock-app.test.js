// The stock Jitsi Meet web app (`JITSI_MEET_DIR`, built from upstream, never in the
// repository) served by Convene itself through `[web] jitsi_meet_dir`, on its default
// settings. Skipped when JITSI_MEET_DIR is unset.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { launchChromium, requireIsolatedNetwork, startConvene, waitFor } from '../support/harness.js';
import { skipUnlessSet, stockPath, stockReception } from '../support/stock.js';

const ROOM = 'StockAppRoom';
const NAMES = ['Alice', 'Bob', 'Carol'];
const MEDIA_TIMEOUT = 60_000;

describe('the stock Jitsi Meet app served by Convene', { skip: skipUnlessSet('JITSI_MEET_DIR', 'the stock Jitsi Meet app'), timeout: 300_000 }, () => {
  /** @type {Awaited<ReturnType<typeof startConvene>>} */
  let server;
  /** @type {import('playwright-core').Browser} */
  let browser;
  /** Uncaught errors of the app's pages (reported; some are known gaps of issue 10). @type {string[]} */
  const pageErrors = [];

  before(async () => {
    requireIsolatedNetwork();
    const dir = stockPath('JITSI_MEET_DIR');
    server = await startConvene({ configToml: `[web]\njitsi_meet_dir = ${JSON.stringify(dir)}\n` });
    browser = await launchChromium();
  });

  after(async () => {
    if (pageErrors.length) console.log(`uncaught errors in the app:\n${pageErrors.join('\n')}`);
    await browser?.close();
    await server?.stop();
  });

  it('serves the app for a room path, and three tabs see and hear each other', async () => {
    const page = await (await browser.newContext()).newPage();
    const response = await page.goto(`${server.url}/config.js`);
    assert.match(await response?.text() ?? '', /"websocket":"ws:\/\/127\.0\.0\.1:\d+\/xmpp-websocket"/);
    await page.close();

    /** @type {import('playwright-core').Page[]} */
    const pages = [];
    for (const name of NAMES) {
      const tab = await (await browser.newContext()).newPage();
      tab.on('pageerror', (e) => pageErrors.push(`[${name}] ${e.message}`));
      tab.on('console', (m) => {
        if (m.type() === 'error') console.log(`[${name}] ${m.text().slice(0, 300)}`);
      });
      await tab.goto(`${server.url}/${ROOM}#config.prejoinConfig.enabled=false&userInfo.displayName="${name}"`);
      pages.push(tab);
    }
    const ids = await Promise.all(pages.map((tab) => waitFor(async () => (await stockReception(tab)).me, 'the app joining', MEDIA_TIMEOUT)));
    assert.equal(new Set(ids).size, 3);

    for (const [i, tab] of pages.entries()) {
      const others = ids.filter((_, j) => j !== i);
      await waitFor(
        async () => {
          const now = await stockReception(tab);
          return others.every((id) => (now.from[id]?.frames ?? 0) >= 20 && (now.from[id]?.audioEnergy ?? 0) > 0);
        },
        `${NAMES[i]} decoding and hearing both others`,
        MEDIA_TIMEOUT,
      ).catch(async (err) => {
        console.log(JSON.stringify(await stockReception(tab)));
        throw err;
      });
      // And the page shows them: each remote camera plays in a video element.
      await waitFor(
        () =>
          tab.evaluate(() => {
            /** @type {any} */
            const conference = /** @type {any} */ (window).APP.conference._room;
            const playing = new Set(
              [...document.querySelectorAll('video')]
                .filter((v) => v.videoWidth > 0 && !v.paused && v.srcObject)
                .map((v) => /** @type {MediaStream} */ (v.srcObject).id),
            );
            return conference.getParticipants().every((/** @type {any} */ p) =>
              p.getTracks().filter((/** @type {any} */ t) => t.getType() === 'video').every((/** @type {any} */ t) => playing.has(t.getOriginalStream().id)),
            );
          }),
        `${NAMES[i]}'s page playing both others' cameras`,
        MEDIA_TIMEOUT,
      );
    }
    const sent = (await stockReception(pages[0])).sent;
    console.log(`the app sends ${JSON.stringify(sent)}`);
  });
});
