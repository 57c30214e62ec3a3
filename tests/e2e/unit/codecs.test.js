import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { cameraEncodings, orderCapabilities, parseCodecList, preferenceOrder, scalabilityMode, sendCodec } from '../../../crates/web/client/lib/codecs.js';
import { readOccupantPresence } from '../../../crates/web/client/lib/presence.js';
import { parse } from './fixtures.js';

const ALL = ['av1', 'vp9', 'vp8', 'h264'];

describe('video codec choice', () => {
  it('takes the configured order, case-insensitively, limited to what the browser has', () => {
    assert.deepEqual(preferenceOrder(['AV1', 'vp8'], ALL), ['av1', 'vp8']);
    assert.deepEqual(preferenceOrder(['VP9', 'AV1', 'VP9', 'H265'], ['vp8', 'vp9']), ['vp9']);
    assert.deepEqual(preferenceOrder(undefined, ['vp8', 'vp9']), ['vp9', 'vp8']);
    assert.deepEqual(preferenceOrder(['h265', 42], ALL), ['vp8']);
    assert.deepEqual(preferenceOrder('AV1', ALL), ALL);
  });

  it('reads a codec list from presence, dropping unknown names and repeats', () => {
    assert.deepEqual(parseCodecList('av1,vp9,vp8,h264'), ALL);
    assert.deepEqual(parseCodecList(' VP9 ,h265,vp9'), ['vp9']);
    assert.deepEqual(parseCodecList(undefined), []);
    assert.deepEqual(parseCodecList('vp8,'.repeat(100)), []);
    const presence = parse(
      '<presence xmlns="jabber:client" from="r@conference.localhost/ab12cd34"><jitsi_participant_codecList>av1,vp8</jitsi_participant_codecList></presence>',
    );
    assert.deepEqual(readOccupantPresence(presence, 'r@conference.localhost', '')?.codecs, ['av1', 'vp8']);
  });

  it('sends the first codec of ours that every other participant lists', () => {
    assert.equal(sendCodec(['av1', 'vp9', 'vp8'], [ALL, ALL]), 'av1');
    assert.equal(sendCodec(['av1', 'vp9', 'vp8'], [ALL, ['vp9', 'vp8']]), 'vp9');
    assert.equal(sendCodec(['av1', 'vp9', 'vp8'], [ALL, ['vp8']]), 'vp8');
    // A participant that lists nothing (a transcriber, an old client) does not count.
    assert.equal(sendCodec(['av1', 'vp8'], [[]]), 'av1');
    // Nothing shared: keep our first choice.
    assert.equal(sendCodec(['av1'], [['vp9']]), 'av1');
  });

  it('configures SVC in the first encoding for VP9 and AV1, simulcast for VP8', () => {
    assert.equal(scalabilityMode(720), 'L3T3_KEY');
    assert.equal(scalabilityMode(480), 'L2T3_KEY');
    assert.equal(scalabilityMode(180), 'L1T3');
    assert.deepEqual(cameraEncodings('av1', 3, 720), [
      { active: true, scaleResolutionDownBy: 1, scalabilityMode: 'L3T3_KEY' },
      { active: false },
      { active: false },
    ]);
    assert.deepEqual(cameraEncodings('vp9', 1, 720), [{ active: true, scaleResolutionDownBy: 1, scalabilityMode: 'L3T3_KEY' }]);
    assert.deepEqual(
      cameraEncodings('vp8', 3, 720).map((e) => e.scaleResolutionDownBy),
      [4, 2, 1],
    );
    assert.deepEqual(cameraEncodings('vp8', 1, 720), [{ active: true, scaleResolutionDownBy: 1, scalabilityMode: 'L1T3' }]);
  });

  it('puts the preferred codecs first in the capabilities and keeps the rest in place', () => {
    const caps = ['VP8', 'rtx', 'VP9', 'VP9', 'AV1', 'red', 'H264'].map((n, i) => ({ mimeType: `video/${n}`, i }));
    const ordered = orderCapabilities(caps, ['av1', 'vp9']).map((c) => c.i);
    assert.deepEqual(ordered, [4, 2, 3, 0, 1, 5, 6]);
  });
});
