// @ts-check
/**
 * The bridge channel over WebSocket (Colibri messages, JSON text frames): receiver video
 * constraints go up; forwarded sources, dominant speaker and endpoint messages come down.
 * Reconnects with back-off after an abnormal close.
 */

import { Emitter } from './emitter.js';

/**
 * @typedef {object} BridgeChannelEvents
 * @property {string[]} forwarded-sources names of the video sources the bridge forwards to us
 * @property {{ endpoint: string, previous: string[], silence: boolean }} dominant-speaker
 * @property {{ from: string, payload: Record<string, unknown> }} endpoint-message
 * @property {boolean} open whether the channel is up
 */

/**
 * @typedef {object} VideoConstraints
 * @property {number} lastN -1: no limit
 * @property {string[]} onStageSources
 * @property {number} defaultMaxHeight
 * @property {Record<string, number>} maxHeights per source name
 */

const MAX_BACKOFF_MS = 30_000;
const MAX_MESSAGE = 256 * 1024;

/** @extends {Emitter<BridgeChannelEvents>} */
export class BridgeChannel extends Emitter {
  /** @type {WebSocket | undefined} */
  #socket;
  #backoff = 1000;
  #closed = false;
  /** @type {string | undefined} last constraints sent, re-sent after a reconnect */
  #constraints;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #retry;

  /** @param {string} url */
  constructor(url) {
    super();
    this.url = url;
    this.#open();
  }

  #open() {
    const socket = new WebSocket(this.url);
    this.#socket = socket;
    socket.onopen = () => {
      this.#backoff = 1000;
      this.emit('open', true);
      if (this.#constraints) socket.send(this.#constraints);
    };
    socket.onmessage = (ev) => {
      if (typeof ev.data === 'string' && ev.data.length <= MAX_MESSAGE) this.#onMessage(ev.data);
    };
    socket.onclose = (ev) => {
      this.emit('open', false);
      if (this.#closed || ev.code === 1000 || ev.code === 1001) return;
      this.#retry = setTimeout(() => this.#open(), this.#backoff);
      this.#backoff = Math.min(this.#backoff * 2, MAX_BACKOFF_MS);
    };
  }

  /** @param {string} text */
  #onMessage(text) {
    /** @type {any} */
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    switch (msg?.colibriClass) {
      case 'ForwardedSources':
        if (Array.isArray(msg.forwardedSources)) this.emit('forwarded-sources', msg.forwardedSources.filter((/** @type {unknown} */ s) => typeof s === 'string'));
        break;
      case 'DominantSpeakerEndpointChangeEvent':
        if (typeof msg.dominantSpeakerEndpoint === 'string') {
          this.emit('dominant-speaker', {
            endpoint: msg.dominantSpeakerEndpoint,
            previous: Array.isArray(msg.previousSpeakers) ? msg.previousSpeakers : [],
            silence: msg.silence === true,
          });
        }
        break;
      case 'EndpointMessage':
        if (typeof msg.from === 'string' && typeof msg.msgPayload === 'object' && msg.msgPayload !== null) {
          this.emit('endpoint-message', { from: msg.from, payload: msg.msgPayload });
        }
        break;
      default:
        break;
    }
  }

  /**
   * Tells the bridge which video sources we show and how large.
   * @param {VideoConstraints} c
   */
  setConstraints(c) {
    /** @type {Record<string, { maxHeight: number }>} */
    const constraints = {};
    for (const [name, maxHeight] of Object.entries(c.maxHeights)) constraints[name] = { maxHeight };
    const text = JSON.stringify({
      colibriClass: 'ReceiverVideoConstraints',
      lastN: c.lastN,
      onStageSources: c.onStageSources,
      defaultConstraints: { maxHeight: c.defaultMaxHeight },
      constraints,
    });
    if (text === this.#constraints) return;
    this.#constraints = text;
    this.#sendRaw(text);
  }

  /**
   * @param {string} sourceName @param {'camera' | 'desktop' | 'none'} videoType
   */
  sendVideoType(sourceName, videoType) {
    this.#sendRaw(JSON.stringify({ colibriClass: 'SourceVideoTypeMessage', sourceName, videoType }));
  }

  /** @param {Record<string, unknown>} payload @param {string} [to] endpoint id; '' = everyone */
  sendEndpointMessage(payload, to = '') {
    this.#sendRaw(JSON.stringify({ colibriClass: 'EndpointMessage', to, msgPayload: payload }));
  }

  /** @param {string} text */
  #sendRaw(text) {
    if (this.#socket?.readyState === WebSocket.OPEN) this.#socket.send(text);
  }

  close() {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#socket?.close(1000);
  }
}
