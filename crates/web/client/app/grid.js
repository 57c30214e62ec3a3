// @ts-check
/**
 * The responsive tile grid: one tile per participant (camera or avatar, name, mute
 * state, speaking indicator, dominant-speaker highlight) and one per screen share.
 */

import { h, initials } from './dom.js';
import { icons } from './icons.js';

export class Tile {
  /** @param {string} key @param {string} name @param {{ local?: boolean, screen?: boolean }} [kind] */
  constructor(key, name, kind = {}) {
    this.key = key;
    this.el = h('div', `tile${kind.local ? ' local' : ''}${kind.screen ? ' screen' : ''}`);
    this.el.dataset.key = key;
    this.video = h('video');
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.muted = true;
    this.avatar = h('div', 'avatar');
    this.label = h('div', 'label');
    this.micIcon = h('span', 'mic-off');
    this.micIcon.innerHTML = icons.micOff;
    this.micIcon.hidden = true;
    this.nameEl = h('span', 'name');
    this.label.append(this.micIcon, this.nameEl);
    this.el.append(this.video, this.avatar, this.label);
    /** @type {MediaStreamTrack | null} */
    this.videoTrack = null;
    /** @type {HTMLAudioElement | null} */
    this.audio = null;
    this.setName(name);
    this.#showVideo(false);
  }

  /** @param {string} name */
  setName(name) {
    this.nameEl.textContent = name;
    this.avatar.textContent = initials(name);
  }

  /** @param {MediaStreamTrack | null} track */
  setVideo(track) {
    this.videoTrack = track;
    this.video.srcObject = track ? new MediaStream([track]) : null;
    this.#showVideo(!!track);
  }

  /** @param {MediaStreamTrack} track */
  setAudio(track) {
    if (!this.audio) {
      this.audio = h('audio');
      this.audio.autoplay = true;
      this.el.append(this.audio);
    }
    this.audio.srcObject = new MediaStream([track]);
    this.audio.play().catch(() => undefined);
  }

  /** @param {boolean} muted */
  setAudioMuted(muted) {
    this.micIcon.hidden = !muted;
  }

  /** Camera off (muted or not forwarded): show the avatar instead of a frozen frame. @param {boolean} off */
  setVideoOff(off) {
    this.#showVideo(!off && !!this.videoTrack);
  }

  /** @param {boolean} speaking */
  setSpeaking(speaking) {
    this.el.classList.toggle('speaking', speaking);
  }

  /** Floats an emoji over the tile for a few seconds. @param {string} emoji */
  showReaction(emoji) {
    const bubble = h('span', 'reaction', emoji);
    bubble.setAttribute('role', 'img');
    this.el.append(bubble);
    setTimeout(() => bubble.remove(), 3000);
  }

  /** @param {boolean} dominant */
  setDominant(dominant) {
    this.el.classList.toggle('dominant', dominant);
  }

  /** @param {boolean} show */
  #showVideo(show) {
    this.video.hidden = !show;
    this.avatar.hidden = show;
  }

  remove() {
    this.video.srcObject = null;
    if (this.audio) this.audio.srcObject = null;
    this.el.remove();
  }
}

export class Grid {
  /** @type {Map<string, Tile>} */
  tiles = new Map();

  /** @param {HTMLElement} container @param {() => void} onLayout called when tile sizes may have changed */
  constructor(container, onLayout) {
    this.container = container;
    this.onLayout = onLayout;
    new ResizeObserver(() => this.layout()).observe(container);
  }

  /** @param {string} key @param {string} name @param {{ local?: boolean, screen?: boolean }} [kind] */
  ensure(key, name, kind) {
    let tile = this.tiles.get(key);
    if (!tile) {
      tile = new Tile(key, name, kind);
      this.tiles.set(key, tile);
      if (kind?.screen) this.container.prepend(tile.el);
      else this.container.append(tile.el);
      this.layout();
    }
    return tile;
  }

  /** @param {string} key */
  remove(key) {
    const tile = this.tiles.get(key);
    if (!tile) return;
    tile.remove();
    this.tiles.delete(key);
    this.layout();
  }

  /** Picks the column count that gives the largest 16:9 tiles for the space available. */
  layout() {
    const n = Math.max(1, this.tiles.size);
    const style = getComputedStyle(this.container);
    const gap = parseFloat(style.columnGap) || 0;
    const w = this.container.clientWidth - (parseFloat(style.paddingLeft) || 0) - (parseFloat(style.paddingRight) || 0);
    const hgt = this.container.clientHeight - (parseFloat(style.paddingTop) || 0) - (parseFloat(style.paddingBottom) || 0);
    let best = { cols: 1, width: 0 };
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const width = Math.min((w - (cols - 1) * gap) / cols, (((hgt - (rows - 1) * gap) / rows) * 16) / 9);
      if (width > best.width) best = { cols, width };
    }
    const width = Math.max(0, Math.floor(best.width));
    this.container.style.setProperty('--tile-w', `${width}px`);
    this.container.style.setProperty('--tile-h', `${Math.floor((width * 9) / 16)}px`);
    this.container.dataset.count = String(n);
    this.onLayout();
  }
}
