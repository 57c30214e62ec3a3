import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { mergeConfig, parseHashConfig } from '../../../crates/web/client/lib/hash-config.js';

describe('URL hash overrides', () => {
  it('reads Jitsi Meet style keys with JSON values', () => {
    const o = parseHashConfig('#config.prejoinConfig.enabled=false&userInfo.displayName=%22Alice%20B%22&config.resolution=360');
    assert.deepEqual(o.config, { prejoinConfig: { enabled: false }, resolution: 360 });
    assert.deepEqual(o.userInfo, { displayName: 'Alice B' });
  });

  it('takes a value that is not JSON as a string', () => {
    assert.equal(parseHashConfig('userInfo.displayName=Bob').userInfo.displayName, 'Bob');
    assert.equal(parseHashConfig('userInfo.displayName="A"').userInfo.displayName, 'A');
  });

  it('ignores other roots, malformed pairs and prototype keys', () => {
    const o = parseHashConfig('#interfaceConfig.X=1&config=1&=2&config.__proto__.polluted=true&config.a.constructor=1&config.%E0%A4%A=1&junk');
    assert.deepEqual(o, { config: {}, userInfo: {} });
    assert.equal(/** @type {any} */ ({}).polluted, undefined);
  });

  it('applies only the whitelisted config keys, in dotted or object form', () => {
    const o = parseHashConfig(
      '#config.hosts.muc="evil"&config.websocket="ws://evil"&config.focusUserJid="x"&config.p2p=%7B%22enabled%22%3Atrue%2C%22stunServers%22%3A1%7D' +
        '&config.prejoinConfig=%7B%22enabled%22%3Afalse%2C%22other%22%3A1%7D&config.startWithAudioMuted=true&config.toolbarButtons=%5B%22chat%22%5D',
    );
    assert.deepEqual(o.config, { p2p: { enabled: true }, prejoinConfig: { enabled: false }, startWithAudioMuted: true, toolbarButtons: ['chat'] });
  });

  it('reads the iframe API id and the token the iframe API puts in the hash', () => {
    const o = parseHashConfig('#jitsi_meet_external_api_id=3&jwt="eyJ.a.b"&userInfo.email=%22a%40b.c%22');
    assert.equal(o.apiId, 3);
    assert.equal(o.jwt, 'eyJ.a.b');
    assert.equal(o.userInfo.email, 'a@b.c');
    assert.equal(parseHashConfig('#jitsi_meet_external_api_id="x"&jwt=5').apiId, undefined);
    assert.equal(parseHashConfig('#jitsi_meet_external_api_id=1e400').apiId, undefined);
  });

  it('merges overrides deeply into the server config', () => {
    const base = { hosts: { domain: 'd', muc: 'conference.d' }, prejoinConfig: { enabled: true }, p2p: { enabled: false } };
    const merged = mergeConfig(base, parseHashConfig('config.prejoinConfig.enabled=false&config.videoQuality.codecPreferenceOrder=["AV1"]').config);
    assert.deepEqual(merged, { hosts: { domain: 'd', muc: 'conference.d' }, prejoinConfig: { enabled: false }, p2p: { enabled: false }, videoQuality: { codecPreferenceOrder: ['AV1'] } });
    assert.equal(base.prejoinConfig.enabled, true, 'the base is not modified');
  });
});
