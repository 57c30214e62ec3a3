// Shared pieces of the tests against the stock Jitsi clients. Their builds never enter the
// repository: the tests take them from the environment (docs/stock-clients.md) and are
// skipped, saying so, when the variable is unset.
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * `false` when environment variable `name` is set, else the reason to skip.
 * @param {string} name @param {string} what
 */
export function skipUnlessSet(name, what) {
  if (process.env[name]) return false;
  const reason = `${name} is not set: the tests against ${what} are skipped (see docs/stock-clients.md)`;
  console.log(reason);
  return reason;
}

/**
 * The path in environment variable `name`, which must exist.
 * @param {string} name
 */
export function stockPath(name) {
  const value = /** @type {string} */ (process.env[name]);
  if (!existsSync(value)) throw new Error(`${name}=${value} does not exist`);
  return value;
}

/**
 * Serves the lib-jitsi-meet test page (`ljm-page.js`) with the bundle at `bundle`, on an
 * origin of its own (so Convene is cross-origin to it, as to an app hosted elsewhere).
 * The page loads Convene's `config.js` for the deployment settings.
 * @param {string} bundle @param {string} conveneUrl
 */
export async function startLjmPageServer(bundle, conveneUrl) {
  const page = `<!doctype html><meta charset="utf-8"><title>lib-jitsi-meet on Convene</title>
<script src="${conveneUrl}/config.js"></script>
<script src="/lib-jitsi-meet.min.js"></script>
<script type="module" src="/ljm-page.js"></script>`;
  const files = {
    '/': ['text/html', page],
    '/lib-jitsi-meet.min.js': ['text/javascript', readFileSync(bundle)],
    '/ljm-page.js': ['text/javascript', readFileSync(path.join(here, 'ljm-page.js'))],
  };
  const server = http.createServer((req, res) => {
    const file = files[/** @type {keyof typeof files} */ (new URL(req.url ?? '/', 'http://x').pathname)];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file[0] }).end(file[1]);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
}

/**
 * @typedef {{ frames: number, height: number, codec: string, screenFrames: number, audioBytes: number, audioEnergy: number }} FromParticipant
 * @typedef {{ me: string, port: number, sent: { codec: string, scalabilityMode: string, height: number }[], from: Record<string, FromParticipant> }} Reception
 */

/**
 * What a stock client's page receives, per remote participant, from its bridge
 * PeerConnection's getStats (not the DOM): decoded camera frames and height, screen-share
 * frames, audio bytes and energy; and what it sends (codec, scalability mode).
 * The conference is the test page's (`window.stockConference`) or the app's
 * (`APP.conference._room`).
 * @param {import('playwright-core').Page} page
 * @returns {Promise<Reception>}
 */
export function stockReception(page) {
  return page.evaluate(async () => {
    /** @type {any} */
    const w = window;
    const conference = w.stockConference ?? w.APP?.conference?._room;
    /** @type {Reception} */
    const out = { me: conference?.myUserId?.() ?? '', port: 0, sent: [], from: {} };
    const pc = conference?.jvbJingleSession?.peerconnection?.peerconnection;
    if (!pc) return out;
    /** @type {Map<string, { participant: string, videoType: string }>} */
    const tracks = new Map();
    for (const participant of conference.getParticipants()) {
      for (const track of participant.getTracks()) {
        const id = track.getTrack()?.id;
        if (id) tracks.set(id, { participant: participant.getId(), videoType: track.getVideoType?.() ?? '' });
      }
    }
    const stats = await pc.getStats();
    /** @type {Map<string, any>} */
    const byId = new Map();
    stats.forEach((/** @type {any} */ s) => byId.set(s.id, s));
    stats.forEach((/** @type {any} */ s) => {
      const codec = byId.get(s.codecId)?.mimeType ?? '';
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        out.sent.push({ codec, scalabilityMode: s.scalabilityMode ?? '', height: s.frameHeight ?? 0 });
      }
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        out.port = byId.get(byId.get(s.selectedCandidatePairId)?.localCandidateId)?.port ?? 0;
      }
      const track = s.type === 'inbound-rtp' ? tracks.get(s.trackIdentifier) : undefined;
      if (!track) return;
      const from = (out.from[track.participant] ??= { frames: 0, height: 0, codec: '', screenFrames: 0, audioBytes: 0, audioEnergy: 0 });
      if (s.kind === 'audio') {
        from.audioBytes += s.bytesReceived ?? 0;
        from.audioEnergy += s.totalAudioEnergy ?? 0;
      } else if (track.videoType === 'desktop') {
        from.screenFrames += s.framesDecoded ?? 0;
      } else {
        from.frames += s.framesDecoded ?? 0;
        from.height = s.frameHeight ?? 0;
        from.codec = codec;
      }
    });
    return out;
  });
}
