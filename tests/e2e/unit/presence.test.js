import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { readOccupantPresence } from '../../../crates/web/client/lib/presence.js';
import { parse } from './fixtures.js';

const ROOM = 'room@conference.localhost';
const FOCUS = 'focus@auth.localhost';

/** @param {string} inner @param {string} [attrs] */
const presence = (inner, attrs = `from="${ROOM}/ab12cd34"`) =>
  parse(`<presence xmlns="jabber:client" ${attrs}>${inner}</presence>`);

describe('occupant presence', () => {
  it('reads name, role and SourceInfo mute state', () => {
    const p = readOccupantPresence(
      presence(`<x xmlns="http://jabber.org/protocol/muc#user"><item affiliation="none" role="participant" jid="u@localhost/r"/></x>
        <nick xmlns="http://jabber.org/protocol/nick">Alice</nick>
        <SourceInfo>{"ab12cd34-a0":{"muted":true},"ab12cd34-v1":{"muted":false,"videoType":"desktop"}}</SourceInfo>`),
      ROOM,
      FOCUS,
    );
    assert.deepEqual(p, {
      nick: 'ab12cd34',
      isFocus: false,
      unavailable: false,
      displayName: 'Alice',
      role: 'participant',
      kicked: false,
      sources: { 'ab12cd34-a0': { muted: true, videoType: undefined }, 'ab12cd34-v1': { muted: false, videoType: 'desktop' } },
      codecs: [],
      profile: { email: '', avatarUrl: '', raisedHand: 0 },
    });
  });

  it('reads e-mail, avatar, raised hand and a kick, within limits', () => {
    const p = readOccupantPresence(
      presence(`<email>a@example.com</email><avatar-url>${'u'.repeat(5000)}</avatar-url><jitsi_participant_raisedHand>1700000000000</jitsi_participant_raisedHand>`),
      ROOM,
      FOCUS,
    );
    assert.deepEqual(p?.profile, { email: 'a@example.com', avatarUrl: 'u'.repeat(2048), raisedHand: 1700000000000 });
    assert.equal(readOccupantPresence(presence('<jitsi_participant_raisedHand>soon</jitsi_participant_raisedHand>'), ROOM, FOCUS)?.profile.raisedHand, 0);
    const kicked = presence('<x xmlns="http://jabber.org/protocol/muc#user"><item role="none"/><status code="307"/></x>', `from="${ROOM}/ab12cd34" type="unavailable"`);
    assert.equal(readOccupantPresence(kicked, ROOM, FOCUS)?.kicked, true);
  });

  it('recognises the focus by nick or by its real JID', () => {
    assert.equal(readOccupantPresence(presence('', `from="${ROOM}/focus"`), ROOM, FOCUS)?.isFocus, true);
    const byJid = presence(`<x xmlns="http://jabber.org/protocol/muc#user"><item jid="${FOCUS}/f1" role="moderator"/></x>`, `from="${ROOM}/other"`);
    assert.equal(readOccupantPresence(byJid, ROOM, FOCUS)?.isFocus, true);
    assert.equal(readOccupantPresence(byJid, ROOM, '')?.isFocus, false);
  });

  it('ignores sources named for someone else, and bad SourceInfo', () => {
    const forged = presence('<SourceInfo>{"ffffffff-v0":{"muted":true},"ab12cd34-v0":{"muted":"yes"}}</SourceInfo>');
    assert.deepEqual(readOccupantPresence(forged, ROOM, FOCUS)?.sources, { 'ab12cd34-v0': { muted: undefined, videoType: undefined } });
    for (const bad of ['not json', '[1,2]', 'null', '"x"']) {
      assert.equal(readOccupantPresence(presence(`<SourceInfo>${bad}</SourceInfo>`), ROOM, FOCUS)?.sources, undefined, bad);
    }
  });

  it('falls back to the legacy audiomuted/videomuted elements', () => {
    const legacy = presence('<audiomuted>true</audiomuted><videomuted>false</videomuted>');
    assert.deepEqual(readOccupantPresence(legacy, ROOM, FOCUS)?.sources, {
      'ab12cd34-a0': { muted: true },
      'ab12cd34-v0': { muted: false },
    });
  });

  it('skips presences from elsewhere and errors, and marks departures', () => {
    assert.equal(readOccupantPresence(presence('', 'from="other@conference.localhost/x"'), ROOM, FOCUS), undefined);
    assert.equal(readOccupantPresence(presence('', `from="${ROOM}"`), ROOM, FOCUS), undefined);
    assert.equal(readOccupantPresence(presence('', `from="${ROOM}/x" type="error"`), ROOM, FOCUS), undefined);
    assert.equal(readOccupantPresence(presence('', `from="${ROOM}/x" type="unavailable"`), ROOM, FOCUS)?.unavailable, true);
  });

  it('cuts very long display names', () => {
    const long = presence(`<nick xmlns="http://jabber.org/protocol/nick">${'n'.repeat(500)}</nick>`);
    assert.equal(readOccupantPresence(long, ROOM, FOCUS)?.displayName?.length, 64);
  });
});
