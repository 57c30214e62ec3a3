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

  it('merges overrides deeply into the server config', () => {
    const base = { hosts: { domain: 'd', muc: 'conference.d' }, prejoinConfig: { enabled: true }, p2p: { enabled: false } };
    const merged = mergeConfig(base, parseHashConfig('config.prejoinConfig.enabled=false&config.hosts.muc="x"').config);
    assert.deepEqual(merged, { hosts: { domain: 'd', muc: 'x' }, prejoinConfig: { enabled: false }, p2p: { enabled: false } });
    assert.equal(base.prejoinConfig.enabled, true, 'the base is not modified');
  });
});
