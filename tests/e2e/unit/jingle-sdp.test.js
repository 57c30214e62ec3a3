import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseJingle } from '../../../crates/web/client/lib/jingle.js';
import { answerToJingle, sourcesToJingle } from '../../../crates/web/client/lib/jingle-sdp.js';
import { candidateFromSdp, candidateToSdp, parseSdp } from '../../../crates/web/client/lib/sdp.js';
import { SessionModel } from '../../../crates/web/client/lib/session-model.js';
import { NS } from '../../../crates/web/client/lib/xml.js';
import { chromeAnswer, parse, sessionInitiate, sourceAdd, sourceRemoveAudio } from './fixtures.js';

/** @param {string} sdp @param {string} mid */
const section = (sdp, mid) => parseSdp(sdp).find((m) => m.mid === mid);

describe('remote offer from session-initiate', () => {
  const model = new SessionModel('f3kq9a7b2cn1', parseJingle(parse(sessionInitiate)));
  const sdp = model.toSdp();

  it('bundles a sendrecv m-line per kind for our tracks, a spare per kind, and one per remote source', () => {
    assert.match(sdp, /^a=group:BUNDLE 0 1 2 3 4 5$/m);
    const media = parseSdp(sdp);
    assert.deepEqual(
      media.map((m) => [m.kind, m.mid, m.direction]),
      [
        ['audio', '0', 'sendrecv'],
        ['video', '1', 'sendrecv'],
        ['audio', '2', 'sendonly'],
        ['video', '3', 'sendonly'],
        ['audio', '4', 'sendonly'],
        ['video', '5', 'sendonly'],
      ],
    );
    // The spares receive nothing signalled: they only keep payload-type demuxing off.
    for (const mid of ['2', '3']) assert.ok(!section(sdp, mid).attrs.some((a) => a.startsWith('ssrc')), mid);
  });

  it('puts the bridge feedback SSRCs on the main m-lines and nowhere else', () => {
    assert.ok(section(sdp, '0').attrs.includes('ssrc:4039389863 msid:mixedmslabel mixedlabelaudio0'));
    assert.ok(section(sdp, '1').attrs.includes('ssrc:3758540092 msid:mixedmslabel mixedlabelvideo0'));
    assert.equal(sdp.match(/a=ssrc:4039389863 /g).length, 1);
  });

  it('strips a remote simulcast group to its first layer and RTX partner', () => {
    const video = section(sdp, '5');
    assert.ok(video.attrs.includes('ssrc-group:FID 2222 2223'));
    assert.ok(video.attrs.includes('msid:ab12cd34-video-0-1 55e1-1'));
    assert.ok(!sdp.includes('2224') && !sdp.includes('2225'));
    assert.ok(!sdp.includes('SIM'));
    assert.equal(model.slot('5').source.owner, 'ab12cd34');
    assert.equal(model.slot('4').source.owner, 'ab12cd34', 'owner from a full occupant JID');
  });

  it('carries ICE, DTLS, codecs and header extensions into every m-line', () => {
    for (const m of parseSdp(sdp)) {
      assert.ok(m.attrs.includes('ice-ufrag:8k1fm1i'));
      assert.ok(m.attrs.includes('fingerprint:sha-256 AB:CD:EF:01'));
      assert.ok(m.attrs.includes('setup:actpass'));
      assert.ok(m.attrs.includes('rtcp-mux'));
      assert.ok(m.attrs.includes('candidate:1 1 udp 2130706431 127.0.0.1 10000 typ host generation 0'));
    }
    assert.ok(section(sdp, '0').attrs.includes('fmtp:111 minptime=10;useinbandfec=1'));
    assert.ok(section(sdp, '0').attrs.includes('rtcp-fb:111 transport-cc'));
    assert.ok(section(sdp, '0').attrs.includes('extmap-allow-mixed'));
    assert.ok(section(sdp, '1').attrs.includes('fmtp:96 apt=100'));
    assert.ok(section(sdp, '1').attrs.includes('extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time'));
    assert.deepEqual(parseJingle(parse(sessionInitiate)).transport.webSocketUrls, [
      'ws://127.0.0.1:8080/colibri-ws/jvb1/conf1/3f2a9c1e?pwd=secret',
    ]);
  });

  it('increments the SDP version on every rendering', () => {
    const again = model.toSdp();
    const version = (s) => Number(/^o=- \d+ (\d+) /m.exec(s)[1]);
    assert.equal(version(again), version(sdp) + 1);
  });
});

describe('source-add and source-remove', () => {
  it('appends an m-line per new source and makes removed ones inactive, never reusing mids', () => {
    const model = new SessionModel('s', parseJingle(parse(sessionInitiate)));
    const added = model.addSources(parseJingle(parse(sourceAdd)));
    assert.deepEqual(added.map((s) => [s.name, s.videoType, s.ssrcs]), [['ab12cd34-v1', 'desktop', [77, 78]]]);
    assert.equal(model.addSources(parseJingle(parse(sourceAdd))).length, 0, 'a repeated source-add is ignored');
    const removed = model.removeSources(parseJingle(parse(sourceRemoveAudio)));
    assert.deepEqual(removed.map((s) => s.name), ['ab12cd34-a0']);
    const sdp = model.toSdp();
    assert.match(sdp, /^a=group:BUNDLE 0 1 2 3 4 5 6$/m);
    assert.equal(section(sdp, '4').direction, 'inactive');
    assert.ok(!section(sdp, '4').attrs.some((a) => a.startsWith('ssrc:')));
    assert.equal(section(sdp, '6').direction, 'sendonly');
    assert.ok(section(sdp, '6').attrs.includes('ssrc-group:FID 77 78'));
  });

  it('adds an m-line for a local screen share that the bridge receives', () => {
    const model = new SessionModel('s', parseJingle(parse(sessionInitiate)));
    const mid = model.addLocalSlot('video');
    assert.equal(mid, '6');
    assert.equal(section(model.toSdp(), mid).direction, 'recvonly');
    model.closeLocalSlot(mid);
    assert.equal(section(model.toSdp(), mid).direction, 'inactive');
  });

  it('reads JSON-encoded sources', () => {
    const jingle = parse(`<jingle xmlns="urn:xmpp:jingle:1" action="source-add" sid="s">
      <json-message xmlns="http://jitsi.org/jitmeet">{"sources":{"77aa88bb":[[{"s":5,"n":"77aa88bb-v0","m":"x-video y"},{"s":6,"n":"77aa88bb-v0","m":"x-video y"}],[["f",5,6]],[{"s":7,"n":"77aa88bb-a0","m":"x-audio z"}]]}}</json-message></jingle>`);
    const model = new SessionModel('s', parseJingle(parse(sessionInitiate)));
    const added = model.addSources(parseJingle(jingle));
    assert.deepEqual(
      added.map((s) => [s.name, s.kind, s.owner, s.ssrcs]).sort(),
      [
        ['77aa88bb-a0', 'audio', '77aa88bb', [7]],
        ['77aa88bb-v0', 'video', '77aa88bb', [5, 6]],
      ],
    );
  });
});

describe('hostile Jingle', () => {
  it('rejects invalid SSRCs', () => {
    for (const ssrc of ['0', '-1', '4294967296', 'abc', '']) {
      const bad = sessionInitiate.replace('ssrc="1111"', `ssrc="${ssrc}"`);
      assert.throws(() => parseJingle(parse(bad)), /invalid ssrc/, ssrc);
    }
  });

  it('rejects an offer without transport or media', () => {
    const noTransport = parse(`<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="s">
      <content name="audio"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"/></content></jingle>`);
    assert.throws(() => new SessionModel('s', parseJingle(noTransport)), /transport/);
    assert.throws(() => new SessionModel('s', parseJingle(parse('<jingle xmlns="urn:xmpp:jingle:1"/>'))), /transport/);
  });

  it('refuses a flood of sources', () => {
    const many = Array.from({ length: 501 }, (_, i) => `<source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="${i + 1}" name="x${i}-a0"/>`).join('');
    const jingle = parse(`<jingle xmlns="urn:xmpp:jingle:1" action="source-add" sid="s"><content name="audio">
      <description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio">${many}</description></content></jingle>`);
    assert.throws(() => parseJingle(jingle), /too many sources/);
  });

  it('ignores a source-remove for unknown SSRCs', () => {
    const model = new SessionModel('s', parseJingle(parse(sessionInitiate)));
    const removeUnknown = sourceRemoveAudio.replace('1111', '999');
    assert.deepEqual(model.removeSources(parseJingle(parse(removeUnknown))), []);
  });
});

describe('session-accept from the browser answer', () => {
  const [group, audio, video] = answerToJingle(chromeAnswer, [
    { mid: '0', name: '3f2a9c1e-a0' },
    { mid: '1', name: '3f2a9c1e-v0' },
  ]);

  it('has one audio and one video content in a BUNDLE group', () => {
    assert.equal(group.attr('semantics'), 'BUNDLE');
    assert.deepEqual(group.all('content').map((c) => c.attr('name')), ['audio', 'video']);
    assert.equal(audio.attr('name'), 'audio');
    assert.equal(video.attr('name'), 'video');
  });

  it('names our sources and keeps their msid and FID group', () => {
    const desc = video.child('description', NS.rtp);
    const sources = desc.all('source', NS.ssma);
    assert.deepEqual(sources.map((s) => [s.attr('ssrc'), s.attr('name')]), [
      ['11', '3f2a9c1e-v0'],
      ['12', '3f2a9c1e-v0'],
    ]);
    assert.equal(sources[0].child('parameter').attr('value'), 'stream1 camtrack');
    const fid = desc.child('ssrc-group', NS.ssma);
    assert.equal(fid.attr('semantics'), 'FID');
    assert.deepEqual(fid.all('source').map((s) => s.attr('ssrc')), ['11', '12']);
    const audioSources = audio.child('description', NS.rtp).all('source', NS.ssma);
    assert.deepEqual(audioSources.map((s) => [s.attr('ssrc'), s.attr('name')]), [['1234567', '3f2a9c1e-a0']]);
  });

  it('lists the accepted codecs, rtcp-mux and header extensions', () => {
    const desc = audio.child('description', NS.rtp);
    const opus = desc.all('payload-type').find((p) => p.attr('name') === 'opus');
    assert.equal(opus.attr('id'), '111');
    assert.equal(opus.attr('channels'), '2');
    assert.deepEqual(opus.all('parameter').map((p) => [p.attr('name'), p.attr('value')]), [
      ['minptime', '10'],
      ['useinbandfec', '1'],
    ]);
    assert.equal(opus.child('rtcp-fb', NS.rtcpFb).attr('type'), 'transport-cc');
    assert.ok(desc.child('rtcp-mux'));
    assert.equal(desc.all('rtp-hdrext', NS.hdrext).length, 2);
    const rtx = video.child('description', NS.rtp).all('payload-type').find((p) => p.attr('name') === 'rtx');
    assert.deepEqual([rtx.child('parameter').attr('name'), rtx.child('parameter').attr('value')], ['apt', '100']);
  });

  it('carries our ICE credentials and DTLS fingerprint with setup active', () => {
    const transport = audio.child('transport', NS.ice);
    assert.equal(transport.attr('ufrag'), 'gi+W');
    assert.equal(transport.attr('pwd'), 'NmFZpwdpwdpwdpwdpwdpwdpw');
    const fp = transport.child('fingerprint', NS.dtls);
    assert.deepEqual([fp.attr('hash'), fp.attr('setup'), fp.text], ['sha-256', 'active', '41:1D:00:D6']);
    const xml = audio.toString();
    assert.ok(xml.includes('xmlns="urn:xmpp:jingle:transports:ice-udp:1"'));
  });

  it('announces an added screen share with its video type', () => {
    const [content] = sourcesToJingle(chromeAnswer, [{ mid: '1', name: '3f2a9c1e-v1', videoType: 'desktop' }]);
    const source = content.child('description', NS.rtp).child('source', NS.ssma);
    assert.equal(source.attr('videoType'), 'desktop');
    assert.equal(content.child('description', NS.rtp).all('payload-type').length, 0);
  });
});

describe('ICE candidates', () => {
  it('round-trips a host and a srflx candidate', () => {
    for (const line of [
      'candidate:842163049 1 udp 1677729535 127.0.0.1 51234 typ host generation 0',
      'candidate:1 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active generation 0',
      'candidate:2 1 udp 1677729535 198.51.100.4 51234 typ srflx raddr 0.0.0.0 rport 0 generation 0',
    ]) {
      assert.equal(candidateToSdp(candidateFromSdp(line)), line);
    }
    assert.equal(candidateFromSdp('candidate:garbage'), undefined);
  });
});
