// Pieces of the iframe-API tests: an HTTPS front for Convene (the stock and React SDK
// scripts always build `https://` URLs) and a host page on an origin of its own, as a site
// embedding a meeting has.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.resolve(here, '../node_modules');

/** A self-signed certificate for 127.0.0.1 (the browser context ignores certificate errors). */
function selfSigned() {
  const dir = mkdtempSync(path.join(tmpdir(), 'convene-tls-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { key: readFileSync(key), cert: readFileSync(cert) };
}

/**
 * An HTTPS reverse proxy to the Convene at `targetUrl`, as a TLS front end would be: it adds
 * `X-Forwarded-Proto: https` (so `config.js` names `wss://`) and passes WebSocket upgrades.
 * @param {string} targetUrl
 */
export async function startTlsFront(targetUrl) {
  const target = new URL(targetUrl);
  const server = https.createServer(selfSigned(), (req, res) => {
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, 'x-forwarded-proto': 'https' } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (req, socket, head) => {
    const upstream = net.connect(Number(target.port), target.hostname, () => {
      const headers = Object.entries({ ...req.headers, 'x-forwarded-proto': 'https' }).map(([k, v]) => `${k}: ${v}`);
      upstream.write(`${req.method} ${req.url} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`);
      upstream.write(head);
      socket.pipe(upstream);
      upstream.pipe(socket);
    });
    for (const s of [socket, upstream]) s.on('error', () => { socket.destroy(); upstream.destroy(); });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  return { host: `127.0.0.1:${port}`, url: `https://127.0.0.1:${port}`, close: () => server.close() };
}

/**
 * The embedding site: `/` is an empty page with `<div id="meet">`; `/old_external_api.min.js`
 * is the old copy of the script from the npm package `lib-jitsi-meet-dist` (a stand-in for
 * the copies integrations bundle); `/stock_external_api.min.js` the one of `JITSI_MEET_DIR`
 * when set; `/react.html` renders `@jitsi/react-sdk`'s `JitsiMeeting` (bundled here with
 * esbuild) with the props of its query string.
 */
export async function startHostSite() {
  const reactBundle = await build({
    entryPoints: [path.join(here, 'react-host.jsx')],
    bundle: true,
    write: false,
    format: 'iife',
    jsx: 'automatic',
    nodePaths: [modules],
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  });
  const page = (/** @type {string} */ body) => `<!doctype html><meta charset="utf-8"><title>Host site</title><body>${body}</body>`;
  /** @type {Record<string, [string, string | Buffer]>} */
  const files = {
    '/': ['text/html', page('<h1>Our site</h1><div id="meet" style="width:640px;height:400px"></div>')],
    '/react.html': ['text/html', page('<div id="root"></div><script src="/react-host.js"></script>')],
    '/react-host.js': ['text/javascript', reactBundle.outputFiles[0].text],
    '/old_external_api.min.js': ['text/javascript', readFileSync(path.join(modules, 'lib-jitsi-meet-dist/dist/external_api.min.js'))],
  };
  if (process.env.JITSI_MEET_DIR) {
    files['/stock_external_api.min.js'] = ['text/javascript', readFileSync(path.join(process.env.JITSI_MEET_DIR, 'libs/external_api.min.js'))];
  }
  const server = http.createServer((req, res) => {
    const file = files[new URL(req.url ?? '/', 'http://x').pathname];
    if (!file) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': file[0] }).end(file[1]);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
}

/**
 * Constructs `JitsiMeetExternalAPI` in the host page (the script must be loaded) and records
 * every event it emits in `window.events` as `[name, payload]`.
 * @param {import('playwright-core').Page} page @param {string} domain @param {Record<string, unknown>} options
 * @param {string[]} events the event names to record
 */
export function embedMeeting(page, domain, options, events) {
  return page.evaluate(({ domain, options, events }) => {
    const w = /** @type {any} */ (window);
    w.events = [];
    w.api = new w.JitsiMeetExternalAPI(domain, { ...options, parentNode: document.getElementById('meet'), onload: () => w.events.push(['onload', {}]) });
    for (const name of events) w.api.addListener(name, (/** @type {unknown} */ data) => w.events.push([name, data]));
  }, { domain, options, events });
}

/**
 * The payloads of event `name` recorded so far.
 * @param {import('playwright-core').Page} page @param {string} name @returns {Promise<any[]>}
 */
export function recorded(page, name) {
  return page.evaluate((name) => /** @type {any} */ (window).events.filter((/** @type {any[]} */ e) => e[0] === name).map((/** @type {any[]} */ e) => e[1]), name);
}
