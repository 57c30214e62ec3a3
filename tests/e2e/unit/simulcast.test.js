import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseSdp, sectionSsrcs } from '../../../crates/web/client/lib/sdp.js';
import { mungeSimulcast, simulcastSsrcs } from '../../../crates/web/client/lib/simulcast.js';
import { chromeAnswer } from './fixtures.js';

describe('simulcast munging', () => {
  it('turns the camera m-line into three layers, each with an RTX partner', () => {
    const layouts = new Map();
    const munged = mungeSimulcast(chromeAnswer, '1', layouts);
    const sim = simulcastSsrcs(munged, '1');
    assert.equal(sim.length, 3);
    assert.equal(sim[0], 11, 'the browser-chosen SSRC stays the first layer');
    const { ssrcs, groups } = sectionSsrcs(parseSdp(munged).find((m) => m.mid === '1'));
    assert.equal(ssrcs.length, 6);
    assert.ok(ssrcs.every((s) => s.msid === 'stream1 camtrack'));
    const fids = groups.filter((g) => g.semantics === 'FID');
    assert.deepEqual(fids.map((g) => g.ssrcs[0]), sim);
    assert.equal(new Set(ssrcs.map((s) => s.ssrc)).size, 6, 'all SSRCs distinct');
    assert.ok(munged.includes('\r\n') && !/[^\r]\n/.test(munged), 'line endings kept');
  });

  it('reuses the same SSRCs on every renegotiation', () => {
    const layouts = new Map();
    const first = simulcastSsrcs(mungeSimulcast(chromeAnswer, '1', layouts), '1');
    const second = simulcastSsrcs(mungeSimulcast(chromeAnswer, '1', layouts), '1');
    assert.deepEqual(second, first);
  });

  it('leaves audio, receive-only m-lines and already-munged SDPs alone', () => {
    const layouts = new Map();
    assert.equal(mungeSimulcast(chromeAnswer, '3', layouts), chromeAnswer);
    assert.equal(mungeSimulcast(chromeAnswer, '9', layouts), chromeAnswer);
    const once = mungeSimulcast(chromeAnswer, '1', layouts);
    assert.equal(mungeSimulcast(once, '1', layouts), once);
    const audio = parseSdp(once).find((m) => m.mid === '0');
    assert.deepEqual(sectionSsrcs(audio).groups, []);
  });
});
