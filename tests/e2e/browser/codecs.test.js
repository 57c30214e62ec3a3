// Short three-party calls of the web client with each camera codec it can send (VP8
// simulcast, VP9 SVC, AV1 SVC, chosen with Jitsi's `config.videoQuality.codecPreferenceOrder`
// hash override), and a mixed room where one participant can only use VP8: the others send
// VP8 while it is there (the codec lists in presence), and AV1 once it has left.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { endpointId, launchChromium, requireIsolatedNetwork, startConvene, waitFor } from '../support/harness.js';

const MEDIA_TIMEOUT = 60_000;
const MIN_FRAMES = 20;
/** Tiles of a 480×360 window are under 200 px: the page asks for 180p (ReceiverVideoConstraints). */
const SMALL = { width: 480, height: 360 };

/**
 * What a page sends and receives on camera: per remote endpoint the decoded frames, height
 * and codec; for its own camera the codec, and the scalability mode of each active encoding.
 * @param {import('playwright-core').Page} page
 */
function video(page) {
  return page.evaluate(async () => {
    /** @type {any} */
    const convene = /** @type {any} */ (window).convene;
    const model = convene.conference.session.model;
    const stats = await convene.pc.getStats();
    /** @type {Map<string, any>} */
    const byId = new Map();
    stats.forEach((/** @type {any} */ s) => byId.set(s.id, s));
    const codecOf = (/** @type {any} */ s) => (byId.get(s.codecId)?.mimeType ?? '').toLowerCase().replace('video/', '');
    /** @type {Record<string, { frames: number, height: number, codec: string }>} */
    const received = {};
    /** @type {{ codec: string, mode: string, frames: number }[]} */
    const sent = [];
    stats.forEach((/** @type {any} */ s) => {
      if (s.kind !== 'video') return;
      const source = s.type === 'inbound-rtp' ? model.slot(String(s.mid))?.source : undefined;
      if (source && source.videoType !== 'desktop') {
        received[source.owner] = { frames: s.framesDecoded ?? 0, height: s.frameHeight ?? 0, codec: codecOf(s) };
      }
      if (s.type === 'outbound-rtp' && s.mid === '1' && (s.framesEncoded ?? 0) > 0) {
        sent.push({ codec: codecOf(s), mode: s.scalabilityMode ?? '', frames: s.framesEncoded });
      }
    });
    return { received, sent, cameraCodec: convene.conference.session.cameraCodec };
  });
}

describe('camera codecs of the web client', { timeout: 300_000 }, () => {
  /** @type {Awaited<ReturnType<typeof startConvene>>} */
  let server;
  /** @type {import('playwright-core').Browser} */
  let browser;
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

  /**
   * Opens one participant in `room` preferring `codecs`; returns its page and endpoint id.
   * @param {string} room @param {string} name @param {string[]} codecs
   * @param {{ width: number, height: number }} [viewport]
   */
  const join = async (room, name, codecs, viewport) => {
    const context = await browser.newContext(viewport ? { viewport } : {});
    const page = await context.newPage();
    page.on('pageerror', (e) => console.log(`[${name}] page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') console.log(`[${name}] ${m.type()}: ${m.text()}`);
    });
    const order = encodeURIComponent(JSON.stringify(codecs));
    await page.goto(
      `${server.url}/${room}#config.prejoinConfig.enabled=false&userInfo.displayName="${name}"&config.videoQuality.codecPreferenceOrder=${order}`,
    );
    return { page, context, id: await waitFor(() => endpointId(page), `${name}'s MUC join`) };
  };

  /**
   * Waits until every page decodes at least MIN_FRAMES of every other's camera.
   * @param {{ page: import('playwright-core').Page, id: string }[]} people
   */
  const everyoneDecodesEveryone = async (people) => {
    for (const [i, { page }] of people.entries()) {
      const others = people.filter((_, j) => j !== i).map((p) => p.id);
      let last = {};
      await waitFor(
        async () => {
          last = await video(page);
          return others.every((id) => (/** @type {any} */ (last).received[id]?.frames ?? 0) >= MIN_FRAMES);
        },
        `participant ${i} decoding ${MIN_FRAMES} frames of ${others}`,
        MEDIA_TIMEOUT,
      ).catch((err) => {
        failed = true;
        throw new Error(`${err.message}: ${JSON.stringify(last)}`);
      });
    }
  };

  /** @param {{ context: import('playwright-core').BrowserContext }[]} people */
  const leave = async (people) => {
    for (const { context } of people) await context.close();
  };

  for (const [codec, mode] of /** @type {const} */ ([
    ['VP8', 'L1T3'],
    ['VP9', 'L3T3_KEY'],
    ['AV1', 'L3T3_KEY'],
  ])) {
    it(`runs a call on ${codec}: everyone decodes everyone, a small window gets ≤ 180p`, async () => {
      const room = `codec-${codec.toLowerCase()}`;
      const people = [
        await join(room, 'Alice', [codec]),
        await join(room, 'Bob', [codec]),
        await join(room, 'Carol', [codec], SMALL),
      ];
      try {
        await everyoneDecodesEveryone(people);
        const lower = codec.toLowerCase();
        for (const [i, { page }] of people.entries()) {
          const { received, sent, cameraCodec } = await video(page);
          assert.equal(cameraCodec, lower, `participant ${i} sends ${cameraCodec}`);
          assert.ok(sent.length > 0 && sent.every((s) => s.codec === lower && s.mode === mode), `participant ${i} sends ${JSON.stringify(sent)}`);
          // With SVC there is one encoding (the others are inactive); VP8 sends simulcast.
          if (mode !== 'L1T3') assert.equal(sent.length, 1, `participant ${i} encodings ${JSON.stringify(sent)}`);
          for (const r of Object.values(received)) assert.equal(r.codec, lower, `participant ${i} receives ${JSON.stringify(received)}`);
        }
        // Carol's tiles are small: the bridge forwards her the lowest spatial layer (or
        // simulcast encoding) only.
        const carol = people[2];
        const others = people.slice(0, 2).map((p) => p.id);
        let last = {};
        await waitFor(
          async () => {
            last = (await video(carol.page)).received;
            return others.every((id) => {
              const r = /** @type {any} */ (last)[id];
              return r && r.height > 0 && r.height <= 180;
            });
          },
          'Carol receiving at most 180p',
          20_000,
        ).catch((err) => {
          failed = true;
          throw new Error(`${err.message}: ${JSON.stringify(last)}`);
        });
      } finally {
        await leave(people);
      }
    });
  }

  it('holds VP8-only and AV1 participants in one room: the AV1 ones send VP8 while it is there, then AV1', async () => {
    const room = 'codec-mixed';
    /** @param {import('playwright-core').Page} page @param {string} codec @param {string} who */
    const sends = (page, codec, who) => waitFor(async () => (await video(page)).cameraCodec === codec, `${who} sending ${codec}`, 15_000);
    // Bob cannot use AV1 (his codec list says VP8): Alice and Carol, who prefer AV1, send
    // VP8 (simulcast) while he is in the room.
    const bob = await join(room, 'Bob', ['VP8']);
    const people = [bob, await join(room, 'Alice', ['AV1', 'VP8']), await join(room, 'Carol', ['AV1', 'VP8'])];
    try {
      await everyoneDecodesEveryone(people);
      for (const [i, { page }] of people.entries()) await sends(page, 'vp8', `participant ${i}`);
      // Once Bob leaves, AV1 is shared: both switch to it without renegotiating, and go on
      // decoding each other.
      await bob.context.close();
      people.shift();
      for (const [i, { page }] of people.entries()) await sends(page, 'av1', `participant ${i} after Bob left`);
      const before = await Promise.all(people.map(({ page }) => video(page)));
      await waitFor(
        async () => {
          const now = await Promise.all(people.map(({ page }) => video(page)));
          return now.every((v, i) =>
            Object.entries(v.received).every(([id, r]) => r.codec === 'av1' && r.frames >= (before[i].received[id]?.frames ?? 0) + MIN_FRAMES),
          );
        },
        'Alice and Carol decoding each other in AV1',
        MEDIA_TIMEOUT,
      );
    } finally {
      await leave(people);
    }
  });
});
