// The client's Jingle session in a real headless Chromium, against a second real
// RTCPeerConnection that plays the bridge: its SDP offer is turned into a Jingle
// session-initiate, and our session-accept's SDP goes back to it. Checks that Chromium
// accepts the offers we render, that media flows both ways, that the camera really sends
// three simulcast layers, and that source-remove takes a remote source away.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { launchChromium, repoRoot, requireIsolatedNetwork } from '../support/harness.js';

const clientDir = path.join(repoRoot, 'crates/web/client');

describe('Jingle session against a Chromium peer playing the bridge', { timeout: 60_000 }, () => {
  /** @type {http.Server} */
  let server;
  /** @type {import('playwright-core').Browser} */
  let browser;
  let origin = '';

  before(async () => {
    requireIsolatedNetwork();
    server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/') {
        res.setHeader('content-type', 'text/html');
        res.end('<!doctype html><title>session test</title>');
        return;
      }
      const file = path.join(clientDir, path.normalize(url.pathname.replace(/^\/assets\//, '')));
      if (!file.startsWith(clientDir) || !existsSync(file)) {
        res.statusCode = 404;
        res.end();
        return;
      }
      res.setHeader('content-type', 'text/javascript');
      res.end(readFileSync(file));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    origin = `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (server.address()).port}`;
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    server?.close();
  });

  it('negotiates, receives and sends media, simulcasts, and applies source-remove', async () => {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
    await page.goto(origin);
    const result = await page.evaluate(async () => {
      const { JingleSession } = await import('/assets/lib/jingle-session.js');
      const { answerToJingle } = await import('/assets/lib/jingle-sdp.js');
      const { parseJingle } = await import('/assets/lib/jingle.js');
      const { parseSdp } = await import('/assets/lib/sdp.js');
      const { xml, NS, parseXml } = await import('/assets/lib/xml.js');
      // As the stanzas arrive over the wire: serialized, then parsed.
      /** @param {any} el */
      const wire = (el) => parseXml(el.toString());

      // The "bridge": sendrecv audio and video for our tracks, the client's spare receive-only
      // m-lines (nothing sent there), and one remote participant.
      const bridge = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
      const remote = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
      bridge.addTransceiver('audio', { direction: 'sendrecv' });
      bridge.addTransceiver('video', { direction: 'sendrecv' });
      bridge.addTransceiver('audio', { direction: 'sendonly' });
      bridge.addTransceiver('video', { direction: 'sendonly' });
      for (const track of remote.getTracks()) bridge.addTransceiver(track, { direction: 'sendonly', streams: [remote] });
      await bridge.setLocalDescription(await bridge.createOffer());
      await new Promise((resolve) => {
        if (bridge.iceGatheringState === 'complete') resolve(undefined);
        bridge.onicegatheringstatechange = () => bridge.iceGatheringState === 'complete' && resolve(undefined);
      });
      const remoteSources = [
        { mid: '4', name: 'remote01-a0' },
        { mid: '5', name: 'remote01-v0' },
      ];
      const [, ...contents] = answerToJingle(/** @type {string} */ (bridge.localDescription?.sdp), remoteSources);
      const initiate = wire(xml('jingle', { xmlns: NS.jingle, action: 'session-initiate', sid: 's1' }, contents));

      const local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 1280, height: 720 } });
      /** @type {string[]} */
      const sent = [];
      const xmpp = /** @type {any} */ ({
        connected: true,
        request: async (/** @type {any} */ iq) => {
          sent.push(iq.toString());
          return iq;
        },
      });
      const session = new JingleSession(
        {
          xmpp,
          focusJid: 'room@conference.localhost/focus',
          ownJid: 'room@conference.localhost/aaaa1111',
          endpointId: 'aaaa1111',
          simulcast: true,
          codecs: ['vp8'],
          sendCodec: 'vp8',
          tracks: { audio: local.getAudioTracks()[0], video: local.getVideoTracks()[0] },
        },
        's1',
        parseJingle(initiate),
        'room@conference.localhost/focus',
      );
      /** @type {string[]} */
      const tracks = [];
      session.on('track', ({ source, track }) => tracks.push(`${source.name}:${track.kind}`));
      /** @type {string[]} */
      const removed = [];
      session.on('source-removed', (s) => removed.push(s.name));
      await session.start();
      await bridge.setRemoteDescription({ type: 'answer', sdp: /** @type {string} */ (session.pc.localDescription?.sdp) });

      /** @param {RTCPeerConnection} pc */
      const inbound = async (pc) => {
        /** @type {Record<string, number>} */
        const out = {};
        (await pc.getStats()).forEach((/** @type {any} */ s) => {
          if (s.type === 'inbound-rtp') out[`${s.kind}`] = (out[`${s.kind}`] ?? 0) + (s.kind === 'video' ? s.framesDecoded : s.packetsReceived);
        });
        return out;
      };
      const deadline = Date.now() + 20_000;
      let ours = await inbound(session.pc);
      let theirs = await inbound(bridge);
      while (Date.now() < deadline && !(ours.video > 0 && ours.audio > 0 && theirs.video > 0 && theirs.audio > 0)) {
        await new Promise((r) => setTimeout(r, 200));
        ours = await inbound(session.pc);
        theirs = await inbound(bridge);
      }
      const camera = session.pc.getTransceivers().find((t) => t.mid === '1');
      const encodings = camera?.sender.getParameters().encodings.length ?? 0;

      // source-remove of the remote participant's sources: their m-lines go inactive.
      const [, ...removeContents] = answerToJingle(/** @type {string} */ (bridge.localDescription?.sdp), remoteSources);
      for (const c of removeContents) c.children = c.children.filter((x) => x.name === 'description');
      await session.sourceRemove(wire(xml('jingle', { xmlns: NS.jingle, action: 'source-remove', sid: 's1' }, removeContents)));
      const directions = parseSdp(/** @type {string} */ (session.pc.localDescription?.sdp)).map((m) => `${m.mid}:${m.direction}`);
      session.close({ notify: false });
      bridge.close();
      return { sent, tracks, ours, theirs, encodings, removed, directions };
    });

    assert.ok(result.sent[0].includes('action="session-accept"'), 'sends session-accept');
    assert.ok(result.sent[0].includes('name="aaaa1111-v0"') && result.sent[0].includes('semantics="SIM"'));
    assert.deepEqual(result.tracks.sort(), ['remote01-a0:audio', 'remote01-v0:video']);
    assert.ok(result.ours.video > 0 && result.ours.audio > 0, `we receive: ${JSON.stringify(result.ours)}`);
    assert.ok(result.theirs.video > 0 && result.theirs.audio > 0, `the peer receives: ${JSON.stringify(result.theirs)}`);
    assert.equal(result.encodings, 3, 'the camera sends three simulcast encodings');
    assert.deepEqual(result.removed.sort(), ['remote01-a0', 'remote01-v0']);
    assert.deepEqual(result.directions, ['0:sendrecv', '1:sendrecv', '2:recvonly', '3:recvonly', '4:inactive', '5:inactive']);
  });
});
