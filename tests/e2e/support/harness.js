// Shared pieces of the browser tests: a real Convene server and a real headless Chromium.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');

/** Flags every browser gets: fake devices, loopback ICE, nothing phoning home. */
export const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  '--auto-select-desktop-capture-source=Entire screen',
];

/** Refuses to run outside the namespace that `netns.js` creates (only loopback up). */
export function requireIsolatedNetwork() {
  if (process.env.CONVENE_NETNS !== '1') {
    throw new Error('browser tests must run inside `node netns.js` (an isolated network namespace)');
  }
}

async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * Starts `target/debug/convene` on a free loopback port with a data dir of its own.
 * `restart()` stops it and starts it again on the same port and data dir (a server
 * restart as the clients see it: every connection drops).
 * @param {{ configToml?: string }} [options] a configuration file's text (flags still set the port, data dir and domain)
 * @returns {Promise<{ url: string, stop: () => Promise<void>, restart: () => Promise<void>, log: () => string }>}
 */
export async function startConvene(options = {}) {
  const binary = process.env.CONVENE_BIN ?? path.join(repoRoot, 'target/debug/convene');
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run \`cargo build -p convene\` first`);
  const dir = mkdtempSync(path.join(tmpdir(), 'convene-e2e-'));
  const port = await freePort();
  const logPath = path.join(dir, 'convene.log');
  const logFile = createWriteStream(logPath);
  const url = `http://127.0.0.1:${port}`;
  const log = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');

  const args = ['--http-listen', `127.0.0.1:${port}`, '--data-dir', path.join(dir, 'data'), '--domain', 'localhost'];
  if (options.configToml !== undefined) {
    writeFileSync(path.join(dir, 'convene.toml'), options.configToml);
    args.push('--config', path.join(dir, 'convene.toml'));
  }

  const launch = async () => {
    const child = spawn(binary, args, {
      cwd: dir,
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(logFile, { end: false });
    child.stderr.pipe(logFile, { end: false });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`convene exited with ${child.exitCode}:\n${log()}`);
      try {
        const res = await fetch(`${url}/config.js`);
        if (res.ok) return child;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`convene did not start:\n${log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  /** @param {import('node:child_process').ChildProcess} child */
  const kill = async (child) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };

  let child = await launch();
  return {
    url,
    log,
    restart: async () => {
      await kill(child);
      child = await launch();
    },
    stop: async () => {
      await kill(child);
      logFile.end();
      if (!process.env.CONVENE_KEEP_LOGS) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Launches headless Chromium (Debian's, never a downloaded one). Each launch gets a fresh
 * temporary user-data dir from Playwright, removed on close.
 * @param {string[]} [extraArgs]
 */
export function launchChromium(extraArgs = ['--use-fake-ui-for-media-stream']) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

/**
 * Polls `fn` until it returns a truthy value.
 * @template T
 * @param {() => Promise<T>} fn @param {string} what @param {number} [timeoutMs]
 * @returns {Promise<T>}
 */
export async function waitFor(fn, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Per remote endpoint, what this page's PeerConnection received (from getStats, not the
 * DOM): decoded camera and screen frames and audio packets.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<Record<string, { frames: number, screenFrames: number, audioPackets: number, framesPerMid: Record<string, number> }>>}
 */
export function receivedMedia(page) {
  return page.evaluate(async () => {
    /** @type {any} */
    const convene = /** @type {any} */ (window).convene;
    const pc = convene?.pc;
    const model = convene?.conference?.session?.model;
    /** @type {Record<string, { frames: number, screenFrames: number, audioPackets: number, framesPerMid: Record<string, number> }>} */
    const out = {};
    if (!pc || !model) return out;
    const stats = await pc.getStats();
    stats.forEach((/** @type {any} */ s) => {
      if (s.type !== 'inbound-rtp') return;
      const source = model.slot(String(s.mid))?.source;
      if (!source) return;
      const entry = (out[source.owner] ??= { frames: 0, screenFrames: 0, audioPackets: 0, framesPerMid: {} });
      if (s.kind === 'audio') entry.audioPackets += s.packetsReceived ?? 0;
      else if (source.videoType === 'desktop') entry.screenFrames += s.framesDecoded ?? 0;
      else entry.frames += s.framesDecoded ?? 0;
    });
    return out;
  });
}

/** @param {import('playwright-core').Page} page @returns {Promise<string>} */
export function endpointId(page) {
  return page.evaluate(() => /** @type {any} */ (window).convene?.conference?.endpointId ?? '');
}

/**
 * A TCP proxy to `targetUrl` whose connections can all be cut at once: a network blip as
 * the browser sees it (its WebSockets drop) while the server keeps running.
 * @param {string} targetUrl
 */
export async function startProxy(targetUrl) {
  const target = new URL(targetUrl);
  /** @type {Set<net.Socket>} */
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  const dropAll = () => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    dropAll,
    close: () => {
      dropAll();
      server.close();
    },
  };
}

/** Limits what loopback delivers to UDP `port` to `kbps` (htb, 50-packet queue): a slow downlink. */
export function throttle(/** @type {number} */ port, /** @type {number} */ kbps) {
  const tc = (/** @type {string} */ args) => execFileSync('tc', args.split(' '));
  tc('qdisc add dev lo root handle 1: htb default 10');
  tc('class add dev lo parent 1: classid 1:10 htb rate 10gbit');
  tc(`class add dev lo parent 1: classid 1:20 htb rate ${kbps}kbit ceil ${kbps}kbit`);
  tc('qdisc add dev lo parent 1:20 handle 20: pfifo limit 50');
  tc(`filter add dev lo parent 1: protocol ip prio 1 u32 match ip protocol 17 0xff match ip dport ${port} 0xffff flowid 1:20`);
}

/** Removes what `throttle` set up. */
export const unthrottle = () => execFileSync('tc', ['qdisc', 'del', 'dev', 'lo', 'root']);
