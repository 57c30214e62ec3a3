// @ts-check
/**
 * XMPP client over WebSocket (RFC 7395): framing, SASL ANONYMOUS (or SCRAM / PLAIN with a
 * user name and password), resource binding,
 * IQ request/response tracking, answers to ping and disco#info, a keep-alive ping that
 * detects a dead connection, and stream management (XEP-0198): stanzas are counted and
 * acknowledged both ways, and when the WebSocket drops the session is resumed on a new
 * one (unacknowledged stanzas are sent again), so a network blip costs no rejoin. Only
 * when resumption fails does the conference layer see `disconnected`.
 */

import { Emitter } from './emitter.js';
import { SCRAM, ScramClient, plainMessage } from './scram.js';
import { NS, XmlElement, parseXml, xml } from './xml.js';

/** What this client tells others it supports (disco#info), as a Jitsi client does. */
export const CLIENT_FEATURES = [
  NS.discoInfo,
  NS.ping,
  NS.jingle,
  NS.rtp,
  'urn:xmpp:jingle:transports:ice-udp:1',
  'urn:xmpp:jingle:apps:dtls:0',
  'urn:xmpp:jingle:apps:rtp:audio',
  'urn:xmpp:jingle:apps:rtp:video',
  'urn:ietf:rfc:4588',
  'http://jitsi.org/tcc',
  'http://jitsi.org/source-name',
  'http://jitsi.org/receive-multiple-video-streams',
];

const IQ_TIMEOUT_MS = 10_000;
/** How long to keep trying to resume a dropped stream (the server keeps it 60 s). */
const RESUME_WINDOW_MS = 30_000;
/** Unacknowledged stanzas kept for resending; beyond this the stream is given up. */
const MAX_UNACKED = 1000;
const ACK_REQUEST_DELAY_MS = 1000;
const STANZAS = new Set(['message', 'presence', 'iq']);
const PING_INTERVAL_MS = 10_000;
const PING_TIMEOUT_MS = 5_000;

/**
 * A login the server refused (SASL failure): `condition` is the failure's element
 * (`not-authorized`, `not-allowed`, ...), the message its text.
 */
export class AuthError extends Error {
  /** @param {string} condition @param {string} text */
  constructor(condition, text) {
    super(text || condition);
    this.name = 'AuthError';
    this.condition = condition;
  }
}

/** An IQ answered with type="error" (or not answered in time). */
export class IqError extends Error {
  /** @param {string} condition stanza error condition, or 'timeout' @param {XmlElement} [stanza] */
  constructor(condition, stanza) {
    super(`IQ failed: ${condition}`);
    this.condition = condition;
    this.stanza = stanza;
  }
}

/**
 * @typedef {object} XmppEvents
 * @property {XmlElement} message
 * @property {XmlElement} presence
 * @property {{ reason: string }} disconnected the connection is gone (only after `connected`)
 */

/** @typedef {(iq: XmlElement) => XmlElement | void} IqHandler returns the result payload or nothing */

/** @extends {Emitter<XmppEvents>} */
export class XmppConnection extends Emitter {
  /** @type {WebSocket | undefined} */
  #socket;
  /** @type {Map<string, { resolve: (iq: XmlElement) => void, reject: (e: Error) => void, timer: ReturnType<typeof setTimeout> }>} */
  #pending = new Map();
  /** @type {Map<string, IqHandler>} handlers of incoming get/set IQs, by payload namespace */
  #iqHandlers = new Map();
  #nextId = 0;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #pingTimer;
  #lastReceived = 0;
  #closed = false;
  #resuming = false;
  /**
   * Stream management state (XEP-0198); counters are modulo 2^32. `id` is set when the
   * server allows resumption; `unacked` holds sent stanzas not yet acknowledged.
   * @type {{ enabled: boolean, id: string, inbound: number, outbound: number, unacked: string[] }}
   */
  #sm = { enabled: false, id: '', inbound: 0, outbound: 0, unacked: [] };
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #ackTimer;
  /** The bound full JID, once connected. */
  jid = '';
  /** How many times the stream was resumed after a drop. */
  resumptions = 0;

  /**
   * @param {string} url WebSocket URL @param {string} domain XMPP domain
   * @param {{ user: string, password: string }} [credentials] log in with these, else anonymously
   */
  constructor(url, domain, credentials) {
    super();
    this.url = url;
    this.domain = domain;
    this.credentials = credentials;
    this.onIq(NS.ping, () => undefined);
    this.onIq(NS.discoInfo, (iq) => {
      if (iq.attr('type') !== 'get') return undefined;
      return xml('query', { xmlns: NS.discoInfo, node: iq.child('query')?.attr('node') }, [
        xml('identity', { category: 'client', type: 'web', name: 'Convene' }),
        ...CLIENT_FEATURES.map((f) => xml('feature', { var: f })),
      ]);
    });
  }

  /**
   * Registers the handler for incoming get/set IQs whose payload has namespace `ns`.
   * @param {string} ns @param {IqHandler} handler
   */
  onIq(ns, handler) {
    this.#iqHandlers.set(ns, handler);
  }

  /** Opens the stream, authenticates anonymously and binds a resource. Resolves to the JID. */
  async connect() {
    const { socket, frames } = await this.#openSocket(this.url);
    const features = await this.#authenticate(frames);
    if (!features.child('bind', NS.bind)) throw new Error('server offers no resource binding');
    const id = this.#id();
    this.#write(xml('iq', { xmlns: NS.client, type: 'set', id }, [xml('bind', { xmlns: NS.bind })]));
    const result = await frames.next();
    const jid = result.child('bind', NS.bind)?.child('jid')?.text;
    if (result.attr('type') !== 'result' || result.attr('id') !== id || !jid) {
      throw new Error('resource binding failed');
    }
    this.jid = jid;
    /** @type {XmlElement[]} */
    const early = [];
    if (features.child('sm', NS.sm)) {
      this.#write(xml('enable', { xmlns: NS.sm, resume: 'true' }));
      for (;;) {
        const reply = await frames.next();
        if (reply.name === 'enabled' && reply.ns === NS.sm) {
          const resumable = ['true', '1'].includes(reply.attr('resume') ?? '');
          this.#sm = { enabled: true, id: resumable ? (reply.attr('id') ?? '') : '', inbound: 0, outbound: 0, unacked: [] };
          break;
        }
        if (reply.name === 'failed' && reply.ns === NS.sm) break;
        early.push(reply);
      }
    }
    this.#attach(socket, frames);
    for (const stanza of early) this.#dispatch(stanza);
    this.#pingTimer = setInterval(() => this.#keepAlive(), PING_INTERVAL_MS);
    return jid;
  }

  /**
   * Opens a WebSocket and collects its frames until the stream is attached.
   * @param {string} url
   * @returns {Promise<{ socket: WebSocket, frames: FrameQueue }>}
   */
  async #openSocket(url) {
    const socket = new WebSocket(url, 'xmpp');
    this.#socket = socket;
    const frames = new FrameQueue();
    socket.onmessage = (ev) => frames.push(typeof ev.data === 'string' ? ev.data : '');
    socket.onclose = (ev) => frames.fail(new Error(`WebSocket closed (${ev.code})`));
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`cannot reach ${this.url}`));
    });
    return { socket, frames };
  }

  /**
   * SASL (ANONYMOUS, or SCRAM-SHA-256 / SCRAM-SHA-1 / PLAIN with credentials) and the
   * stream restart; returns the features of the restarted stream.
   * @param {FrameQueue} frames
   */
  async #authenticate(frames) {
    const features = await this.#openStream(frames);
    const offered = features.child('mechanisms', NS.sasl)?.all('mechanism').map((m) => m.text) ?? [];
    const auth = this.credentials ? await this.#passwordLogin(frames, offered, this.credentials) : await this.#anonymousLogin(frames, offered);
    if (auth.name !== 'success') {
      const condition = auth.children.find((c) => c.name !== 'text')?.name ?? 'not-authorized';
      throw new AuthError(condition, auth.child('text')?.text ?? '');
    }
    return this.#openStream(frames);
  }

  /** @param {FrameQueue} frames @param {string[]} offered */
  async #anonymousLogin(frames, offered) {
    if (!offered.includes('ANONYMOUS')) throw new AuthError('not-allowed', 'this server does not let guests in without signing in');
    this.#write(xml('auth', { xmlns: NS.sasl, mechanism: 'ANONYMOUS' }));
    return frames.next();
  }

  /** @param {FrameQueue} frames @param {string[]} offered @param {{ user: string, password: string }} credentials */
  async #passwordLogin(frames, offered, { user, password }) {
    const scram = SCRAM.find(([name]) => offered.includes(name));
    if (!scram) {
      if (!offered.includes('PLAIN')) throw new AuthError('not-allowed', 'this server offers no password login here');
      this.#write(xml('auth', { xmlns: NS.sasl, mechanism: 'PLAIN' }, plainMessage(user, password)));
      return frames.next();
    }
    const client = new ScramClient(scram[1], user, password);
    this.#write(xml('auth', { xmlns: NS.sasl, mechanism: scram[0] }, client.first()));
    const challenge = await frames.next();
    if (challenge.name !== 'challenge') return challenge;
    this.#write(xml('response', { xmlns: NS.sasl }, await client.final(challenge.text)));
    const outcome = await frames.next();
    if (outcome.name === 'success' && !client.verify(outcome.text)) throw new AuthError('not-authorized', 'the server could not prove it knows the password');
    return outcome;
  }

  /** Hands a logged-in socket to the stanza dispatcher. @param {WebSocket} socket @param {FrameQueue} frames */
  #attach(socket, frames) {
    socket.onmessage = (ev) => this.#onFrame(typeof ev.data === 'string' ? ev.data : '');
    socket.onclose = (ev) => this.#onSocketClosed(socket, `socket closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`);
    this.#lastReceived = Date.now();
    for (const frame of frames.drain()) this.#onFrame(frame);
  }

  /** @param {WebSocket} socket @param {string} reason */
  #onSocketClosed(socket, reason) {
    if (this.#closed || socket !== this.#socket) return;
    if (this.#sm.id && !this.#resuming) this.#resume(reason);
    else if (!this.#resuming) this.#onClosed(reason);
  }

  /**
   * Resumes the stream on a new WebSocket (XEP-0198 §5), retrying with back-off while the
   * server may still hold the session; gives up (→ `disconnected`) when it says no.
   * @param {string} reason why the old socket went away
   */
  async #resume(reason) {
    this.#resuming = true;
    const deadline = Date.now() + RESUME_WINDOW_MS;
    let delay = 250;
    let why = reason;
    while (!this.#closed && Date.now() < deadline) {
      try {
        const url = `${this.url}${this.url.includes('?') ? '&' : '?'}previd=${encodeURIComponent(this.#sm.id)}`;
        const { socket, frames } = await this.#openSocket(url);
        await this.#authenticate(frames);
        this.#write(xml('resume', { xmlns: NS.sm, h: this.#sm.inbound, previd: this.#sm.id }));
        const reply = await frames.next();
        if (reply.name !== 'resumed') {
          why = `${reason}; the server could not resume the session`;
          socket.close(1000);
          break;
        }
        this.#acknowledged(Number(reply.attr('h') ?? 0));
        this.#resuming = false;
        this.resumptions++;
        this.#attach(socket, frames);
        for (const stanza of this.#sm.unacked) socket.send(stanza);
        this.#requestAck();
        return;
      } catch (err) {
        why = `${reason}; resuming failed: ${err instanceof Error ? err.message : err}`;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 4000);
      }
    }
    this.#resuming = false;
    this.#onClosed(why);
  }

  /** The server acknowledged `h` stanzas in all: forget those. @param {number} h */
  #acknowledged(h) {
    const unackedCount = (this.#sm.outbound - h) >>> 0;
    if (!Number.isInteger(h) || unackedCount > this.#sm.unacked.length) return; // bogus count
    this.#sm.unacked.splice(0, this.#sm.unacked.length - unackedCount);
  }

  /** Asks the server for an acknowledgement soon (batched). */
  #requestAck() {
    if (this.#ackTimer !== undefined || !this.#sm.enabled) return;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      if (!this.#resuming && this.#sm.unacked.length > 0) this.#tryWrite(xml('r', { xmlns: NS.sm }));
    }, ACK_REQUEST_DELAY_MS);
  }

  /** @param {FrameQueue} frames @returns {Promise<XmlElement>} the stream features */
  async #openStream(frames) {
    this.#write(xml('open', { xmlns: NS.framing, to: this.domain, version: '1.0' }));
    const open = await frames.next();
    if (open.name !== 'open' || open.ns !== NS.framing) throw new Error(`expected <open/>, got <${open.name}/>`);
    const features = await frames.next();
    if (features.name !== 'features') throw new Error(`expected stream features, got <${features.name}/>`);
    return features;
  }

  /**
   * Sends a stanza. With stream management it is kept until acknowledged, and a stanza
   * sent while the stream is being resumed goes out once it is.
   * @param {XmlElement} stanza
   */
  send(stanza) {
    if (stanza.ns === undefined) stanza.ns = NS.client;
    if (this.#closed) throw new Error('not connected');
    if (!this.#sm.enabled) return this.#write(stanza);
    if (this.#sm.unacked.length >= MAX_UNACKED) throw new Error('the server stopped acknowledging stanzas');
    const text = stanza.toString();
    this.#sm.unacked.push(text);
    this.#sm.outbound = (this.#sm.outbound + 1) >>> 0;
    if (!this.#resuming) this.#socket?.send(text);
    this.#requestAck();
  }

  /**
   * Sends an IQ and resolves with the result stanza; rejects with IqError.
   * @param {XmlElement} iq an `iq` element without id
   * @param {number} [timeoutMs]
   * @returns {Promise<XmlElement>}
   */
  request(iq, timeoutMs = IQ_TIMEOUT_MS) {
    const id = this.#id();
    iq.attrs.id = id;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new IqError('timeout'));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      try {
        this.send(iq);
      } catch (err) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(err);
      }
    });
  }

  /** Ends the stream politely (the server then ends the session: no resumption). */
  close() {
    if (this.#closed) return;
    if (!this.#resuming) this.#tryWrite(xml('close', { xmlns: NS.framing }));
    this.#socket?.close(1000);
    this.#onClosed('closed by us');
  }

  /** Whether stanzas can be sent (they are queued while the stream is being resumed). */
  get connected() {
    return !this.#closed && (this.#resuming || this.#socket?.readyState === WebSocket.OPEN);
  }

  #id() {
    return `c${++this.#nextId}-${Math.random().toString(36).slice(2, 8)}`;
  }

  /** @param {XmlElement} el */
  #write(el) {
    const socket = this.#socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) throw new Error('not connected');
    socket.send(el.toString());
  }

  /** Writes a non-stanza element if the socket is up (acks, close). @param {XmlElement} el */
  #tryWrite(el) {
    try {
      this.#write(el);
    } catch {
      // the socket is gone; resumption or the close path takes over
    }
  }

  /** @param {string} frame */
  #onFrame(frame) {
    this.#lastReceived = Date.now();
    let stanza;
    try {
      stanza = parseXml(frame);
    } catch (err) {
      console.warn('dropping unparsable frame', err);
      return;
    }
    this.#dispatch(stanza);
  }

  /** @param {XmlElement} stanza */
  #dispatch(stanza) {
    if (stanza.ns === NS.sm) {
      if (stanza.name === 'r') this.#tryWrite(xml('a', { xmlns: NS.sm, h: this.#sm.inbound }));
      else if (stanza.name === 'a') this.#acknowledged(Number(stanza.attr('h')));
      return;
    }
    if (this.#sm.enabled && STANZAS.has(stanza.name)) this.#sm.inbound = (this.#sm.inbound + 1) >>> 0;
    switch (stanza.name) {
      case 'iq':
        this.#onIq(stanza);
        break;
      case 'message':
        this.emit('message', stanza);
        break;
      case 'presence':
        this.emit('presence', stanza);
        break;
      case 'close':
        this.#socket?.close(1000);
        break;
      case 'error':
        console.warn('stream error', stanza.toString());
        break;
      default:
        break;
    }
  }

  /** @param {XmlElement} iq */
  #onIq(iq) {
    const type = iq.attr('type');
    const id = iq.attr('id') ?? '';
    if (type === 'result' || type === 'error') {
      const pending = this.#pending.get(id);
      if (!pending) return;
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      if (type === 'result') pending.resolve(iq);
      else pending.reject(new IqError(errorCondition(iq), iq));
      return;
    }
    const payload = iq.children[0];
    const handler = payload?.ns ? this.#iqHandlers.get(payload.ns) : undefined;
    /** @type {Record<string, string | undefined>} */
    const reply = { type: 'result', id, to: iq.attr('from') };
    if (!handler) {
      this.send(xml('iq', { ...reply, type: 'error' }, [stanzaError('cancel', 'service-unavailable')]));
      return;
    }
    try {
      const result = handler(iq);
      this.send(xml('iq', reply, result ? [result] : []));
    } catch (err) {
      const condition = err instanceof IqError ? err.condition : 'bad-request';
      this.send(xml('iq', { ...reply, type: 'error' }, [stanzaError(errorType(condition), condition)]));
    }
  }

  /** XEP-0199 keep-alive: ping the server when it has been quiet; close if it stays silent. */
  async #keepAlive() {
    if (this.#resuming || Date.now() - this.#lastReceived < PING_INTERVAL_MS) return;
    const ping = xml('iq', { type: 'get', to: this.domain }, [xml('ping', { xmlns: NS.ping })]);
    try {
      await this.request(ping, PING_TIMEOUT_MS);
    } catch (err) {
      if (err instanceof IqError && err.condition === 'timeout' && !this.#resuming) {
        console.warn('server did not answer a ping: dropping the connection');
        const socket = this.#socket;
        socket?.close(4000, 'ping timeout');
        if (socket) this.#onSocketClosed(socket, 'ping timeout');
      }
    }
  }

  /** @param {string} reason */
  #onClosed(reason) {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#pingTimer);
    clearTimeout(this.#ackTimer);
    for (const [, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(new IqError('disconnected'));
    }
    this.#pending.clear();
    if (this.jid) this.emit('disconnected', { reason });
  }
}

/** @param {string} type @param {string} condition */
export function stanzaError(type, condition) {
  return xml('error', { type }, [xml(condition, { xmlns: NS.stanzas })]);
}

/** The error type (RFC 6120 §8.3.2) that goes with a condition we send. @param {string} condition */
function errorType(condition) {
  switch (condition) {
    case 'not-authorized':
      return 'auth';
    case 'item-not-found':
    case 'service-unavailable':
    case 'feature-not-implemented':
      return 'cancel';
    default:
      return 'modify';
  }
}

/** @param {XmlElement} stanza @returns {string} the defined condition of an error stanza */
export function errorCondition(stanza) {
  const error = stanza.child('error');
  return error?.children.find((c) => c.ns === NS.stanzas && c.name !== 'text')?.name ?? 'undefined-condition';
}

/** Frames received during the login handshake, consumed one by one. */
class FrameQueue {
  /** @type {string[]} */
  #frames = [];
  /** @type {((frame: string) => void) | undefined} */
  #waiting;
  /** @type {((err: Error) => void) | undefined} */
  #failWaiting;
  /** @type {Error | undefined} */
  #error;

  /** @param {string} frame */
  push(frame) {
    if (this.#waiting) {
      const w = this.#waiting;
      this.#waiting = undefined;
      w(frame);
    } else this.#frames.push(frame);
  }

  /** @param {Error} err */
  fail(err) {
    this.#error = err;
    this.#failWaiting?.(err);
  }

  /** Frames received but not consumed by the handshake. */
  drain() {
    return this.#frames.splice(0);
  }

  /** @returns {Promise<XmlElement>} */
  async next() {
    const frame = this.#frames.shift() ?? (await this.#wait());
    const el = parseXml(frame);
    if (el.name === 'error' && el.ns === NS.stream) {
      throw new Error(`stream error: ${el.children[0]?.name ?? 'unknown'}`);
    }
    return el;
  }

  /** @returns {Promise<string>} */
  #wait() {
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('server did not answer')), IQ_TIMEOUT_MS);
      this.#waiting = (f) => {
        clearTimeout(timer);
        resolve(f);
      };
      this.#failWaiting = (e) => {
        clearTimeout(timer);
        reject(e);
      };
    });
  }
}
