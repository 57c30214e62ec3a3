// Room control through the stock lib-jitsi-meet (`LJM_BUNDLE`, never in the repository): the
// first participant moderates (the focus grants owner); remote mute of audio and video
// reaches the participant and the bridge, forged mutes and unmutes change nothing, the room
// password, kick and grant moderator. Skipped when LJM_BUNDLE is unset.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { endpointId, launchChromium, requireIsolatedNetwork, startConvene, waitFor } from '../support/harness.js';
import { skipUnlessSet, startLjmPageServer, stockPath, stockReception } from '../support/stock.js';

const ROOM = 'stock-moderation';
const MEDIA_TIMEOUT = 45_000;
const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

describe('room control with the stock lib-jitsi-meet', { skip: skipUnlessSet('LJM_BUNDLE', 'the stock lib-jitsi-meet'), timeout: 300_000 }, () => {
  /** @type {Awaited<ReturnType<typeof startConvene>>} */
  let server;
  /** @type {Awaited<ReturnType<typeof startLjmPageServer>>} */
  let pageServer;
  /** @type {import('playwright-core').Browser} */
  let browser;
  /** @type {Record<string, { page: import('playwright-core').Page, id: string }>} */
  const people = {};
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
      throw err;
    }
  };

  /** Opens the test page as `name` and joins (with `password`): its id, or `error: <lib-jitsi-meet's error>`. @param {string} name @param {string} [password] */
  const open = async (name, password) => {
    const page = await (await browser.newContext()).newPage();
    page.on('pageerror', (e) => console.log(`[${name}] page error: ${e.message}`));
    await page.goto(`${pageServer.url}/?room=${ROOM}&name=${name}`);
    await page.waitForFunction(() => /** @type {any} */ (window).stock);
    const id = await page.evaluate((pw) => /** @type {any} */ (window).stock.join(pw).then((/** @type {string} */ id) => id, (/** @type {Error} */ e) => `error: ${e.message}`), password);
    return { page, id: /** @type {string} */ (id) };
  };

  /** Runs `fn(conference, arg)` in `name`'s page. @param {string} name @param {string} fn @param {any} [arg] */
  const run = (name, fn, arg) =>
    people[name].page.evaluate(([body, a]) => new Function('conference', 'stock', 'arg', body)(/** @type {any} */ (window).stockConference, /** @type {any} */ (window).stock, a), [fn, arg]);

  /** What `who` decodes and hears of `of`. @param {string} who @param {string} of */
  const from = async (who, of) => (await stockReception(people[who].page)).from[people[of].id] ?? { frames: 0, audioEnergy: 0 };

  /** Until `who` decodes video frames and hears sound from `of`. @param {string} who @param {string} of */
  const flowing = async (who, of) => {
    const start = await from(who, of);
    await waitFor(async () => {
      const now = await from(who, of);
      return now.frames - start.frames >= 10 && now.audioEnergy > start.audioEnergy;
    }, `${who} receiving ${of}`, MEDIA_TIMEOUT);
  };

  /** Whether nothing new of `of` reaches `who` within 3 s (after 2 s to settle). @param {string} who @param {string} of */
  const stopped = async (who, of) => {
    await sleep(2000);
    const start = await from(who, of);
    await sleep(3000);
    const end = await from(who, of);
    return { frames: end.frames - start.frames, energy: end.audioEnergy - start.audioEnergy };
  };

  const events = (/** @type {string} */ name) => run(name, 'return window.stockEvents');

  it('the first participant moderates; everyone receives everyone', () =>
    track(async () => {
      for (const name of ['Alice', 'Bob', 'Carol']) people[name] = await open(name);
      await waitFor(async () => (await run('Alice', 'return conference.isModerator()')) === true, 'Alice made moderator');
      assert.equal(await run('Bob', 'return conference.isModerator()'), false);
      await flowing('Carol', 'Bob');
      await flowing('Carol', 'Alice');
    }));

  it('a participant cannot mute anyone: the forged mute changes nothing', () =>
    track(async () => {
      await run('Bob', 'conference.muteParticipant(arg, "audio"); conference.muteParticipant(arg, "video")', people.Alice.id);
      await sleep(1500);
      assert.equal(await run('Alice', 'return stock.isMuted("audio") || stock.isMuted("video")'), false);
      await flowing('Carol', 'Alice');
    }));

  it('a moderator mutes audio and video: the participant is told, the bridge stops forwarding', () =>
    track(async () => {
      await run('Alice', 'conference.muteParticipant(arg, "audio"); conference.muteParticipant(arg, "video")', people.Bob.id);
      await waitFor(async () => (await run('Bob', 'return stock.isMuted("audio") && stock.isMuted("video")')) === true, 'Bob muted by the moderator');
      const muted = (await events('Bob')).filter((/** @type {any} */ e) => e.type === 'muted');
      assert.deepEqual(muted.map((/** @type {any} */ e) => [e.kind, e.by]).sort(), [['audio', people.Alice.id], ['video', people.Alice.id]]);
      const gone = await stopped('Carol', 'Bob');
      assert.ok(gone.frames <= 3 && gone.energy < 1e-4, `Bob's media kept coming: ${JSON.stringify(gone)}`);
    }));

  it('nobody unmutes someone else, not even a moderator', () =>
    track(async () => {
      // lib-jitsi-meet has no API for it: its room's own mute request with `false`.
      for (const name of ['Alice', 'Carol']) {
        await run(name, 'conference.room.muteParticipant(conference.room.roomjid + "/" + arg, false, "audio")', people.Bob.id);
      }
      await sleep(1500);
      assert.equal(await run('Bob', 'return stock.isMuted("audio")'), true);
      const still = await stopped('Carol', 'Bob');
      assert.ok(still.energy < 1e-4, `Bob heard after a forged unmute: ${still.energy}`);
    }));

  it('the muted participant unmutes itself and is received again', () =>
    track(async () => {
      await run('Bob', 'return Promise.all([stock.mute("audio", false), stock.mute("video", false)])');
      await flowing('Carol', 'Bob');
      await flowing('Alice', 'Bob');
    }));

  it('a client that ignores the mute is stopped by the bridge until it unmutes itself', () =>
    track(async () => {
      // Carol's lib-jitsi-meet no longer obeys the focus: she goes on sending.
      await run('Carol', 'for (const e of ["xmpp.audio_muted_by_focus", "xmpp.video_muted_by_focus"]) conference.room.eventEmitter.removeAllListeners(e)');
      await run('Alice', 'conference.muteParticipant(arg, "audio"); conference.muteParticipant(arg, "video")', people.Carol.id);
      const gone = await stopped('Bob', 'Carol');
      assert.equal(await run('Carol', 'return stock.isMuted("audio") || stock.isMuted("video")'), false, 'Carol obeyed');
      assert.ok(gone.frames <= 3 && gone.energy < 1e-4, `the bridge forwarded force-muted media: ${JSON.stringify(gone)}`);
      // What lib-jitsi-meet sends when a force-muted user unmutes: its own unmute request.
      await run('Carol', 'for (const kind of ["audio", "video"]) conference.room.muteParticipant(conference.room.myroomjid, false, kind)');
      await flowing('Bob', 'Carol');
    }));

  it('a password locks the room: a join without it is refused, with it admitted', () =>
    track(async () => {
      await run('Alice', 'return conference.lock("s3cret")');
      const refused = await open('Dana');
      assert.equal(refused.id, 'error: conference.passwordRequired');
      const again = await refused.page.evaluate(() => /** @type {any} */ (window).stock.enter('wrong').then(() => 'in', (/** @type {Error} */ e) => e.message));
      assert.equal(again, 'conference.passwordRequired');
      await refused.page.evaluate(() => /** @type {any} */ (window).stock.enter('s3cret'));
      people.Dana = { page: refused.page, id: await refused.page.evaluate(() => /** @type {any} */ (window).stockConference.myUserId()) };
      await waitFor(async () => (await run('Alice', 'return stock.participants()')).includes(people.Dana.id), 'Alice sees Dana');
    }));

  it('a participant cannot kick; a moderator kicks, and grants moderator', () =>
    track(async () => {
      await run('Bob', 'conference.kickParticipant(arg, "go")', people.Dana.id);
      await sleep(1500);
      assert.ok((await run('Alice', 'return stock.participants()')).includes(people.Dana.id), 'Dana kicked by a participant');
      await run('Alice', 'conference.kickParticipant(arg, "bye")', people.Dana.id);
      await waitFor(async () => (await events('Dana')).some((/** @type {any} */ e) => e.type === 'kicked'), 'Dana told she was kicked');
      const kicked = (await events('Dana')).find((/** @type {any} */ e) => e.type === 'kicked');
      assert.equal(kicked.actor, people.Alice.id);
      assert.equal(kicked.reason, 'bye');
      await waitFor(async () => !(await run('Carol', 'return stock.participants()')).includes(people.Dana.id), 'Dana gone for Carol');

      await run('Alice', 'conference.grantOwner(arg)', people.Bob.id);
      await waitFor(async () => (await run('Bob', 'return conference.isModerator()')) === true, 'Bob made moderator');
      await waitFor(
        async () => (await run('Carol', 'return conference.getParticipantById(arg)?.getRole()', people.Bob.id)) === 'moderator',
        'Carol sees Bob moderate',
      );
    }));

  it('Convene’s own client: muted by the moderator, told so, unmutes itself from the keyboard', () =>
    track(async () => {
      // Convene's client has no password prompt yet: the moderator unlocks the room.
      await run('Alice', 'return conference.lock("")');
      const page = await (await browser.newContext()).newPage();
      page.on('pageerror', (e) => console.log(`[Erin] page error: ${e.message}`));
      await page.goto(`${server.url}/${ROOM}#config.prejoinConfig.enabled=false&userInfo.displayName="Erin"`);
      people.Erin = { page, id: await waitFor(() => endpointId(page), 'Erin joining') };
      await waitFor(async () => (await from('Carol', 'Erin')).audioEnergy > 0, 'Carol hearing Erin', MEDIA_TIMEOUT);
      await run('Alice', 'conference.muteParticipant(arg, "audio")', people.Erin.id);
      const banner = page.locator('#banner');
      await waitFor(async () => /A moderator muted your microphone/.test((await banner.textContent()) ?? ''), 'Erin told she was muted');
      assert.equal(await page.locator('#btn-mic').getAttribute('aria-label'), 'Turn on microphone');
      const silent = await stopped('Carol', 'Erin');
      assert.ok(silent.energy < 1e-4, `Erin heard while muted: ${silent.energy}`);
      // Her own unmute (keyboard) asks the focus to let the bridge forward her again.
      await page.locator('#btn-mic').focus();
      await page.keyboard.press('Enter');
      const start = await from('Carol', 'Erin');
      await waitFor(async () => (await from('Carol', 'Erin')).audioEnergy > start.audioEnergy, 'Carol hearing Erin again', MEDIA_TIMEOUT);
    }));

  it('ends the meeting for all when a moderator asks, not when a participant does', () =>
    track(async () => {
      assert.equal(await run('Carol', 'return conference.isEndConferenceSupported()'), true, 'end_conference announced');
      await run('Carol', 'conference.end()');
      await sleep(1500);
      assert.deepEqual(await run('Alice', 'return stock.participants().sort()'), [people.Bob.id, people.Carol.id, people.Erin.id].sort());
      await run('Bob', 'conference.end()');
      for (const name of ['Alice', 'Bob', 'Carol']) {
        await waitFor(async () => (await events(name)).some((/** @type {any} */ e) => e.type === 'failed' && e.error === 'conference.destroyed'), `${name} told the meeting ended`);
      }
      const ended = (await events('Carol')).find((/** @type {any} */ e) => e.type === 'failed');
      assert.equal(ended.reason, 'The meeting has been terminated');
    }));
});
