// Three real headless Chromium participants in one room through a real Convene server
// (XMPP over WebSocket, focus, bridge), all inside an isolated network namespace.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { endpointId, launchChromium, receivedMedia, requireIsolatedNetwork, startConvene, startProxy, throttle, unthrottle, waitFor } from '../support/harness.js';

const ROOM = 'e2e-call';

/** Every RTP stream of a page's PeerConnection (for failure reports). @param {import('playwright-core').Page} page */
const rtpStats = (page) =>
  page.evaluate(async () => {
    /** @type {string[]} */
    const out = [/** @type {any} */ (window).convene.conference.endpointId];
    (await /** @type {any} */ (window).convene.pc.getStats()).forEach((/** @type {any} */ s) => {
      if (s.type === 'inbound-rtp' || s.type === 'outbound-rtp') out.push(`${s.type} mid=${s.mid} ${s.kind} ssrc=${s.ssrc} packets=${s.packetsReceived ?? s.packetsSent}`);
    });
    return out;
  });
const NAMES = ['Alice', 'Bob', 'Carol'];

const MEDIA_TIMEOUT = 60_000;

describe('a three-party call in the browser', { timeout: 240_000 }, () => {
  /** @type {Awaited<ReturnType<typeof startConvene>>} */
  let server;
  /** @type {import('playwright-core').Browser} */
  let browser;
  /** @type {import('playwright-core').Page[]} */
  const pages = [];
  /** @type {string[]} */
  const ids = [];
  let failed = false;

  before(async () => {
    requireIsolatedNetwork();
    server = await startConvene();
    browser = await launchChromium();
  });

  after(async () => {
    if (failed) console.log(`--- convene log ---\n${server?.log().slice(-20_000)}`);
    await browser?.close();
    await server?.stop();
  });

  /** @template T @param {() => Promise<T>} fn */
  const track = async (fn) => {
    try {
      return await fn();
    } catch (err) {
      failed = true;
      throw err;
    }
  };

  it('joins three participants from a link that skips the pre-join screen', () =>
    track(async () => {
      /** @type {Promise<number>[]} */
      const firstFrame = [];
      for (const name of NAMES) {
        const context = await browser.newContext();
        const page = await context.newPage();
        page.on('console', (m) => {
          if (m.type() === 'error' || m.type() === 'warning') console.log(`[${name}] ${m.type()}: ${m.text()}`);
        });
        page.on('pageerror', (e) => console.log(`[${name}] page error: ${e.message}`));
        const opened = Date.now();
        await page.goto(`${server.url}/${ROOM}#config.prejoinConfig.enabled=false&userInfo.displayName="${name}"`);
        pages.push(page);
        firstFrame.push(
          waitFor(async () => Object.values(await receivedMedia(page)).some((m) => m.frames > 0), `${name}'s first remote frame`, MEDIA_TIMEOUT).then(
            () => Date.now() - opened,
          ),
        );
      }
      for (const page of pages) ids.push(await waitFor(() => endpointId(page), 'the MUC join'));
      assert.equal(new Set(ids).size, 3);
      for (const id of ids) assert.match(id, /^[0-9a-f]{8}$/);

      const times = await Promise.all(firstFrame);
      NAMES.forEach((name, i) => {
        console.log(`time from opening the room link to the first decoded remote video frame (${name}): ${times[i]} ms`);
      });

      // Each one decodes video and receives audio from both others (getStats, not the DOM).
      for (const [i, page] of pages.entries()) {
        const others = ids.filter((_, j) => j !== i);
        let media = {};
        await waitFor(
          async () => {
            media = await receivedMedia(page);
            return others.every((id) => (media[id]?.frames ?? 0) > 0 && (media[id]?.audioPackets ?? 0) > 0);
          },
          `${NAMES[i]} receiving audio and video from both others`,
          MEDIA_TIMEOUT,
        ).catch(async (err) => {
          const slots = await page.evaluate(() => /** @type {any} */ (window).convene.conference.session.model.slots.map((/** @type {any} */ s) => `${s.mid}:${s.kind}:${s.direction}:${s.source?.name ?? ''}:${s.source?.ssrcs ?? ''}`));
          const rtp = await Promise.all(pages.map((p) => rtpStats(p)));
          throw new Error(`${err.message}; others ${others}; received ${JSON.stringify(media)}; m-lines ${slots.join(' ')}; RTP per page ${JSON.stringify(rtp)}`);
        });
      }

      // The fake microphones beep: speaking indicators light up, and the bridge names a
      // dominant speaker, whose tile every other page highlights.
      for (const page of pages) {
        await page.locator('.tile.speaking:not(.local)').first().waitFor({ state: 'attached', timeout: 15_000 });
        await page.locator('.tile.dominant').first().waitFor({ state: 'attached', timeout: 15_000 });
      }
    }));

  it('sends three simulcast layers and receives only the layer its small tiles ask for', () =>
    track(async () => {
      for (const [i, page] of pages.entries()) {
        const sample = () =>
          page.evaluate(async () => {
            /** @type {any} */
            const convene = /** @type {any} */ (window).convene;
            const model = convene.conference.session.model;
            /** @type {number[]} */
            const sent = [];
            /** @type {number[]} */
            const received = [];
            (await convene.pc.getStats()).forEach((/** @type {any} */ s) => {
              if (s.type === 'outbound-rtp' && s.kind === 'video' && s.mid === '1') sent.push(s.framesEncoded ?? 0);
              const source = s.type === 'inbound-rtp' && s.kind === 'video' ? model.slot(String(s.mid))?.source : undefined;
              if (source && source.videoType !== 'desktop' && s.frameHeight) received.push(s.frameHeight);
            });
            const tile = /** @type {HTMLElement} */ (document.querySelector('.tile:not(.local)'));
            return { sent, tileHeight: tile.clientHeight * devicePixelRatio, heights: received };
          });
        const first = await sample();
        assert.equal(first.sent.length, 3, `${NAMES[i]} has three camera encodings`);
        // Layers start as the bandwidth estimate grows: at least two must be encoding.
        await waitFor(
          async () => {
            const now = await sample();
            return now.sent.filter((frames, k) => frames > (first.sent[k] ?? 0)).length >= 2;
          },
          `${NAMES[i]} encoding at least two layers`,
          MEDIA_TIMEOUT,
        );
        // Tiles under 400 px ask for 360p (ReceiverVideoConstraints): the 720p layer is never forwarded.
        const { tileHeight, heights } = await sample();
        assert.ok(tileHeight <= 400, `tile height ${tileHeight}`);
        assert.ok(heights.length === 2 && heights.every((h) => h <= 360), `${NAMES[i]} receives heights ${heights}`);
      }
    }));

  it('gives a receiver behind a slow link a lower layer, from its congestion feedback, and the others keep theirs', () =>
    track(async () => {
      const [, bob, carol] = pages;
      /** What a page receives: per camera source, the decoded height and frames, and the UDP port it receives on. */
      const reception = (/** @type {import('playwright-core').Page} */ page) =>
        page.evaluate(async () => {
          /** @type {any} */
          const convene = /** @type {any} */ (window).convene;
          const model = convene.conference.session.model;
          const stats = await convene.pc.getStats();
          /** @type {{ height: number, frames: number }[]} */
          const cameras = [];
          let port = 0;
          /** @type {Map<string, any>} */
          const byId = new Map();
          stats.forEach((/** @type {any} */ s) => byId.set(s.id, s));
          stats.forEach((/** @type {any} */ s) => {
            const source = s.type === 'inbound-rtp' && s.kind === 'video' ? model.slot(String(s.mid))?.source : undefined;
            if (source && source.videoType !== 'desktop') cameras.push({ height: s.frameHeight ?? 0, frames: s.framesDecoded ?? 0 });
            if (s.type === 'transport' && s.selectedCandidatePairId) {
              port = byId.get(byId.get(s.selectedCandidatePairId)?.localCandidateId)?.port ?? 0;
            }
          });
          return { cameras, port };
        });
      const before = await reception(bob);
      assert.ok(before.port > 0 && before.cameras.every((c) => c.height === 360), `Bob before: ${JSON.stringify(before)}`);
      // 600 kb/s carries two 180p layers and the audio, not two 360p layers.
      throttle(before.port, 600);
      try {
        await waitFor(
          async () => (await reception(bob)).cameras.some((c) => c.height > 0 && c.height <= 180),
          'Bob receiving a 180p layer behind 600 kb/s',
          20_000,
        );
        const [bobStart, carolStart] = [await reception(bob), await reception(carol)];
        await new Promise((r) => setTimeout(r, 8000));
        const [bobEnd, carolEnd] = [await reception(bob), await reception(carol)];
        // Bob's video keeps flowing (at least ~5 fps each), and Carol's stays at 360p.
        const gained = (/** @type {typeof bobStart} */ a, /** @type {typeof bobStart} */ b) => b.cameras.map((c, k) => c.frames - (a.cameras[k]?.frames ?? 0));
        assert.ok(gained(bobStart, bobEnd).every((n) => n >= 40), `Bob's frames in 8 s: ${gained(bobStart, bobEnd)}`);
        assert.ok(gained(carolStart, carolEnd).every((n) => n >= 40), `Carol's frames in 8 s: ${gained(carolStart, carolEnd)}`);
        assert.ok(carolEnd.cameras.every((c) => c.height === 360), `Carol receives ${JSON.stringify(carolEnd.cameras)}`);
      } finally {
        unthrottle();
      }
    }));

  it('refuses Jingle that does not come from the focus, and the call goes on', () =>
    track(async () => {
      const [alice, bob] = pages;
      // Bob's page forges Jingle to Alice's occupant JID; the MUC delivers it from Bob.
      const answers = await bob.evaluate(async (aliceId) => {
        /** @type {any} */
        const conference = /** @type {any} */ (window).convene.conference;
        const { xml, NS } = await import('/assets/lib/xml.js');
        const sid = conference.session?.sid ?? 'x';
        /** @type {string[]} */
        const out = [];
        for (const action of ['session-initiate', 'source-remove', 'session-terminate']) {
          const jingle = xml('jingle', { xmlns: NS.jingle, action, sid }, []);
          try {
            await conference.xmpp.request(xml('iq', { type: 'set', to: `${conference.roomJid}/${aliceId}` }, [jingle]));
            out.push(`${action}: accepted`);
          } catch (err) {
            out.push(`${action}: ${/** @type {any} */ (err).condition}`);
          }
        }
        return out;
      }, ids[0]);
      assert.deepEqual(answers, ['session-initiate: not-authorized', 'source-remove: not-authorized', 'session-terminate: not-authorized']);
      const before = await receivedMedia(alice);
      await waitFor(
        async () => {
          const now = await receivedMedia(alice);
          return [ids[1], ids[2]].every((id) => now[id].frames > before[id].frames + 5);
        },
        'media still flowing to Alice',
      );
    }));

  it('delivers a chat message with an unread count, and a reaction, to the others', () =>
    track(async () => {
      const [alice, bob, carol] = pages;
      await alice.click('#btn-chat');
      await alice.fill('#chat-input', 'hello from Alice');
      await alice.press('#chat-input', 'Enter');
      for (const page of [bob, carol]) {
        await page.locator('.chat-message', { hasText: 'hello from Alice' }).waitFor({ state: 'attached', timeout: 10_000 });
        await waitFor(async () => (await page.locator('#unread').textContent()) === '1', 'the unread badge');
      }
      await alice.click('#btn-chat');
      // A reaction goes over the bridge channel (EndpointMessage) and floats over Alice's tile.
      await alice.click('#btn-react');
      await alice.click('.reaction-choice[data-reaction="clap"]');
      for (const page of [bob, carol]) {
        await page.locator(`.tile[data-key="${ids[0]}"] .reaction`, { hasText: '👏' }).waitFor({ state: 'attached', timeout: 10_000 });
      }
      // The participants panel lists everyone with their names.
      await bob.click('#btn-people');
      await waitFor(async () => (await bob.locator('#people-list .person').count()) === 3, 'three people listed');
      const names = await bob.locator('#people-list .person-name').allTextContents();
      assert.deepEqual(names.sort(), ['Alice', 'Bob (you)', 'Carol']);
      await bob.click('#btn-people');
    }));

  it('stops the flow when a participant mutes microphone and camera', () =>
    track(async () => {
      const [alice, bob] = pages;
      const bobId = ids[1];
      await bob.click('#btn-mic');
      await bob.click('#btn-cam');
      // Presence carries the mute state: Alice's tile for Bob shows the muted microphone.
      await alice.locator(`.tile[data-key="${bobId}"] .mic-off`).waitFor({ state: 'visible', timeout: 10_000 });
      await new Promise((r) => setTimeout(r, 1500)); // packets already in flight
      const before = (await receivedMedia(alice))[bobId];
      await new Promise((r) => setTimeout(r, 3000));
      const later = (await receivedMedia(alice))[bobId];
      assert.ok(later.frames - before.frames <= 2, `video frames kept coming: ${before.frames} → ${later.frames}`);
      assert.ok(later.audioPackets - before.audioPackets <= 5, `audio kept coming: ${before.audioPackets} → ${later.audioPackets}`);
      // Unmuting brings the flow back.
      await bob.click('#btn-mic');
      await bob.click('#btn-cam');
      await waitFor(
        async () => {
          const now = (await receivedMedia(alice))[bobId];
          return now.frames > later.frames + 5 && now.audioPackets > later.audioPackets + 10;
        },
        'media from Bob after unmuting',
        MEDIA_TIMEOUT,
      );
    }));

  it('shows a screen share to the others', () =>
    track(async () => {
      const [alice, bob, carol] = pages;
      const carolId = ids[2];
      await carol.click('#btn-screen');
      for (const page of [alice, bob]) {
        await waitFor(
          async () => ((await receivedMedia(page))[carolId]?.screenFrames ?? 0) > 0,
          'decoded screen-share frames',
          MEDIA_TIMEOUT,
        );
        await page.locator(`.tile.screen[data-key="${carolId}-v1"]`).waitFor({ state: 'visible', timeout: 10_000 });
      }
      await carol.click('#btn-screen');
      for (const page of [alice, bob]) {
        await page.locator(`.tile.screen[data-key="${carolId}-v1"]`).waitFor({ state: 'detached', timeout: 15_000 });
      }
    }));

  it('removes a participant who leaves from the others’ grids', () =>
    track(async () => {
      const [alice, bob, carol] = pages;
      const carolId = ids[2];
      for (const page of [alice, bob]) {
        assert.equal(await page.locator(`.tile[data-key="${carolId}"]`).count(), 1);
      }
      await carol.click('#btn-leave');
      await carol.locator('#ended').waitFor({ state: 'visible' });
      for (const page of [alice, bob]) {
        await page.locator(`.tile[data-key="${carolId}"]`).waitFor({ state: 'detached', timeout: 15_000 });
      }
      // The two who stay still receive each other.
      const before = (await receivedMedia(alice))[ids[1]];
      await waitFor(async () => ((await receivedMedia(alice))[ids[1]]?.frames ?? 0) > before.frames + 5, 'media after a leave');
    }));
});

describe('reconnection after the server restarts', { timeout: 180_000 }, () => {
  it('tells the person the connection dropped, rejoins by itself, and media flows again', async () => {
    requireIsolatedNetwork();
    const server = await startConvene();
    const browser = await launchChromium();
    try {
      const pages = [];
      for (const name of ['Erin', 'Frank']) {
        const page = await (await browser.newContext()).newPage();
        await page.goto(`${server.url}/e2e-reconnect#config.prejoinConfig.enabled=false&userInfo.displayName="${name}"`);
        pages.push(page);
      }
      const framesFromAnyone = async (/** @type {import('playwright-core').Page} */ page) =>
        Object.values(await receivedMedia(page)).reduce((n, m) => n + m.frames, 0);
      for (const page of pages) await waitFor(async () => (await framesFromAnyone(page)) > 0, 'media before the restart', MEDIA_TIMEOUT);
      const before = await Promise.all(pages.map((p) => endpointId(p)));

      await server.restart();
      for (const page of pages) {
        await page.locator('#banner', { hasText: 'Connection lost' }).waitFor({ state: 'visible', timeout: 30_000 });
      }
      for (const page of pages) {
        await page.locator('#banner', { hasText: 'Reconnected' }).waitFor({ state: 'visible', timeout: 60_000 });
        await waitFor(async () => (await framesFromAnyone(page)) > 0, 'media after the rejoin', MEDIA_TIMEOUT);
      }
      const after = await Promise.all(pages.map((p) => endpointId(p)));
      assert.notDeepEqual(after, before, 'a rejoin is a new endpoint');
      // Only the current participants are shown: the old endpoints are gone from the grid.
      for (const [i, page] of pages.entries()) {
        const keys = await page.locator('.tile').evaluateAll((tiles) => tiles.map((t) => /** @type {HTMLElement} */ (t).dataset.key));
        assert.deepEqual(keys.sort(), ['local', after[1 - i]].sort());
      }
    } catch (err) {
      console.log(`--- convene log ---\n${server.log().slice(-20_000)}`);
      throw err;
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});

describe('a network blip on the signaling connection', { timeout: 180_000 }, () => {
  it('resumes the XMPP stream (XEP-0198) without rejoining: same endpoint, same media session', async () => {
    requireIsolatedNetwork();
    const server = await startConvene();
    const proxy = await startProxy(server.url);
    const browser = await launchChromium();
    try {
      const pages = [];
      for (const name of ['Gina', 'Hugo']) {
        const page = await (await browser.newContext()).newPage();
        await page.goto(`${proxy.url}/e2e-blip#config.prejoinConfig.enabled=false&userInfo.displayName="${name}"`);
        pages.push(page);
      }
      const ids = [];
      for (const page of pages) {
        await waitFor(async () => Object.values(await receivedMedia(page)).some((m) => m.frames > 0), 'media before the blip', MEDIA_TIMEOUT);
        ids.push(await endpointId(page));
        await page.evaluate(() => Object.assign(window, { pcBeforeBlip: /** @type {any} */ (window).convene.pc }));
      }

      proxy.dropAll();
      for (const page of pages) {
        await waitFor(() => page.evaluate(() => /** @type {any} */ (window).convene.conference.xmpp.resumptions >= 1), 'the stream resumed');
      }
      for (const [i, page] of pages.entries()) {
        assert.equal(await endpointId(page), ids[i], 'still the same endpoint');
        assert.equal(await page.evaluate(() => /** @type {any} */ (window).convene.pc === /** @type {any} */ (window).pcBeforeBlip), true);
        assert.equal(await page.locator('#banner', { hasText: 'Connection lost' }).count(), 0);
      }
      // Signaling works again: a chat message gets through, and media keeps flowing.
      const [gina, hugo] = pages;
      await gina.click('#btn-chat');
      await gina.fill('#chat-input', 'still here');
      await gina.press('#chat-input', 'Enter');
      await hugo.locator('.chat-message', { hasText: 'still here' }).waitFor({ state: 'attached', timeout: 10_000 });
      const before = (await receivedMedia(hugo))[ids[0]].frames;
      await waitFor(async () => (await receivedMedia(hugo))[ids[0]].frames > before + 5, 'media after the blip');
    } catch (err) {
      console.log(`--- convene log ---\n${server.log().slice(-20_000)}`);
      throw err;
    } finally {
      await browser.close();
      proxy.close();
      await server.stop();
    }
  });
});
