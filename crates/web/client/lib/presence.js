// @ts-check
/**
 * Reading MUC presences the way a Jitsi client does (pure; unit-tested): who the occupant
 * is (the focus is the occupant named `focus`, or whose real JID is the focus's), its
 * display name, role, and the mute state of its sources (`SourceInfo`, or the legacy
 * `audiomuted`/`videomuted` elements of older clients).
 */

import { parseCodecList } from './codecs.js';
import { NS, XmlElement } from './xml.js';

/** Longest display name kept (the rest is cut). */
const MAX_NAME = 64;
/** Longest e-mail address or avatar URL kept. */
const MAX_URL = 2048;

/**
 * @typedef {Record<string, { muted?: boolean, videoType?: string }>} SourceStates
 */

/**
 * @typedef {object} OccupantPresence
 * @property {string} nick the occupant's nickname: the endpoint id
 * @property {boolean} isFocus
 * @property {boolean} unavailable
 * @property {string | undefined} displayName
 * @property {string | undefined} role
 * @property {boolean} kicked an unavailable presence saying a moderator removed it (status 307)
 * @property {SourceStates | undefined} sources undefined when the presence says nothing usable
 * @property {string[]} codecs the video codecs it can use, preferred first (`jitsi_participant_codecList`)
 * @property {{ email: string, avatarUrl: string, raisedHand: number }} profile e-mail and avatar URL
 *   (`<email>`, `<avatar-url>`) and when the hand went up (`jitsi_participant_raisedHand`, ms; 0 = down)
 */

/**
 * @param {XmlElement} presence
 * @param {string} roomJid bare JID of the room
 * @param {string} focusJid bare real JID of the focus ('' if unknown)
 * @returns {OccupantPresence | undefined} undefined for presences not from an occupant of the room
 */
export function readOccupantPresence(presence, roomJid, focusJid) {
  const from = presence.attr('from') ?? '';
  if (!from.startsWith(`${roomJid}/`) || presence.attr('type') === 'error') return undefined;
  const nick = from.slice(roomJid.length + 1);
  if (!nick) return undefined;
  const item = presence.child('x', NS.mucUser)?.child('item');
  const realJid = item?.attr('jid') ?? '';
  const name = presence.child('nick', NS.nick)?.text;
  return {
    nick,
    isFocus: nick === 'focus' || (focusJid !== '' && realJid.startsWith(`${focusJid}/`)),
    unavailable: presence.attr('type') === 'unavailable',
    displayName: name === undefined ? undefined : name.trim().slice(0, MAX_NAME),
    role: item?.attr('role'),
    kicked: presence.child('x', NS.mucUser)?.children.some((c) => c.name === 'status' && c.attr('code') === '307') === true,
    sources: readSources(presence, nick),
    codecs: parseCodecList(presence.child('jitsi_participant_codecList')?.text),
    profile: {
      email: (presence.child('email')?.text ?? '').slice(0, MAX_URL),
      avatarUrl: (presence.child('avatar-url')?.text ?? '').slice(0, MAX_URL),
      raisedHand: Number(presence.child('jitsi_participant_raisedHand')?.text) || 0,
    },
  };
}

/**
 * @param {XmlElement} presence @param {string} nick
 * @returns {SourceStates | undefined}
 */
function readSources(presence, nick) {
  const info = presence.child('SourceInfo');
  if (info) {
    try {
      /** @type {unknown} */
      const parsed = JSON.parse(info.text);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
      /** @type {SourceStates} */
      const sources = {};
      for (const [name, state] of Object.entries(parsed)) {
        // A participant may only describe its own sources.
        if (!name.startsWith(`${nick}-`) || typeof state !== 'object' || state === null) continue;
        const { muted, videoType } = /** @type {{ muted?: unknown, videoType?: unknown }} */ (state);
        sources[name] = {
          muted: typeof muted === 'boolean' ? muted : undefined,
          videoType: typeof videoType === 'string' ? videoType : undefined,
        };
      }
      return sources;
    } catch {
      return undefined;
    }
  }
  const audio = presence.child('audiomuted')?.text;
  const video = presence.child('videomuted')?.text;
  if (audio === undefined && video === undefined) return undefined;
  return {
    [`${nick}-a0`]: { muted: audio === 'true' },
    [`${nick}-v0`]: { muted: video === 'true' },
  };
}
