// Recorded-shape stanzas and SDPs (values invented) for the client unit tests.
import { DOMParser } from '@xmldom/xmldom';
import { parseXml } from '../../../crates/web/client/lib/xml.js';

/** @param {string} text */
export const parse = (text) => parseXml(text, new DOMParser());

const transport = `
  <transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="8k1fm1i" pwd="3kq0pwdpwdpwdpwdpwdpwd">
    <fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">AB:CD:EF:01</fingerprint>
    <candidate component="1" foundation="1" generation="0" id="c1" network="0" priority="2130706431"
               protocol="udp" type="host" ip="127.0.0.1" port="10000"/>
    <rtcp-mux/>
    <web-socket xmlns="http://jitsi.org/protocol/colibri" url="ws://127.0.0.1:8080/colibri-ws/jvb1/conf1/3f2a9c1e?pwd=secret"/>
  </transport>`;

export const sessionInitiate = `
<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="f3kq9a7b2cn1" initiator="focus@auth.localhost/focus1">
 <content creator="initiator" name="audio" senders="both">
  <description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio" maxptime="60">
    <payload-type id="111" name="opus" clockrate="48000" channels="2">
      <parameter name="minptime" value="10"/>
      <parameter name="useinbandfec" value="1"/>
      <rtcp-fb xmlns="urn:xmpp:jingle:apps:rtp:rtcp-fb:0" type="transport-cc"/>
    </payload-type>
    <payload-type id="126" name="telephone-event" clockrate="8000"/>
    <rtp-hdrext xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0" id="1" uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"/>
    <rtp-hdrext xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0" id="5" uri="http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"/>
    <extmap-allow-mixed xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0"/>
    <rtcp-mux/>
    <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="4039389863">
      <parameter name="msid" value="mixedmslabel mixedlabelaudio0"/>
      <ssrc-info xmlns="http://jitsi.org/jitmeet" owner="jvb"/>
    </source>
    <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="1111" name="ab12cd34-a0">
      <parameter name="msid" value="ab12cd34-audio-0-1 7c9d-1"/>
      <ssrc-info xmlns="http://jitsi.org/jitmeet" owner="room@conference.localhost/ab12cd34"/>
    </source>
  </description>${transport}
 </content>
 <content creator="initiator" name="video" senders="both">
  <description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video">
    <payload-type id="100" name="VP8" clockrate="90000">
      <rtcp-fb xmlns="urn:xmpp:jingle:apps:rtp:rtcp-fb:0" type="ccm" subtype="fir"/>
      <rtcp-fb xmlns="urn:xmpp:jingle:apps:rtp:rtcp-fb:0" type="nack"/>
      <rtcp-fb xmlns="urn:xmpp:jingle:apps:rtp:rtcp-fb:0" type="nack" subtype="pli"/>
    </payload-type>
    <payload-type id="96" name="rtx" clockrate="90000"><parameter name="apt" value="100"/></payload-type>
    <rtp-hdrext xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0" id="3" uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"/>
    <rtcp-mux/>
    <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="3758540092">
      <parameter name="msid" value="mixedmslabel mixedlabelvideo0"/>
      <ssrc-info xmlns="http://jitsi.org/jitmeet" owner="jvb"/>
    </source>
    <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="2222" name="ab12cd34-v0" videoType="camera">
      <parameter name="msid" value="ab12cd34-video-0-1 55e1-1"/><ssrc-info xmlns="http://jitsi.org/jitmeet" owner="ab12cd34"/>
    </source>
    <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="2223" name="ab12cd34-v0">
      <parameter name="msid" value="ab12cd34-video-0-1 55e1-1"/><ssrc-info xmlns="http://jitsi.org/jitmeet" owner="ab12cd34"/>
    </source>
    <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="2224" name="ab12cd34-v0">
      <parameter name="msid" value="ab12cd34-video-0-1 55e1-1"/><ssrc-info xmlns="http://jitsi.org/jitmeet" owner="ab12cd34"/>
    </source>
    <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="2225" name="ab12cd34-v0">
      <parameter name="msid" value="ab12cd34-video-0-1 55e1-1"/><ssrc-info xmlns="http://jitsi.org/jitmeet" owner="ab12cd34"/>
    </source>
    <ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="SIM"><source ssrc="2222"/><source ssrc="2224"/></ssrc-group>
    <ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="FID"><source ssrc="2222"/><source ssrc="2223"/></ssrc-group>
    <ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="FID"><source ssrc="2224"/><source ssrc="2225"/></ssrc-group>
  </description>${transport}
 </content>
 <group xmlns="urn:xmpp:jingle:apps:grouping:0" semantics="BUNDLE"><content name="audio"/><content name="video"/></group>
 <bridge-session xmlns="http://jitsi.org/protocol/focus" id="b7d1e0"/>
</jingle>`;

export const sourceAdd = `
<jingle xmlns="urn:xmpp:jingle:1" action="source-add" sid="f3kq9a7b2cn1">
 <content name="video">
  <description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video">
    <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="77" name="ab12cd34-v1" videoType="desktop">
      <parameter name="msid" value="ab12cd34-video-1-1 aa-1"/></source>
    <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="78" name="ab12cd34-v1">
      <parameter name="msid" value="ab12cd34-video-1-1 aa-1"/></source>
    <ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="FID"><source ssrc="77"/><source ssrc="78"/></ssrc-group>
  </description>
 </content>
</jingle>`;

export const sourceRemoveAudio = `
<jingle xmlns="urn:xmpp:jingle:1" action="source-remove" sid="f3kq9a7b2cn1">
 <content name="audio">
  <description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio">
    <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="1111" name="ab12cd34-a0"/>
  </description>
 </content>
</jingle>`;

/** What Chrome answers to the offer above (shape of a real answer, values invented). */
export const chromeAnswer = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1 2 3',
  'a=extmap-allow-mixed',
  'a=msid-semantic: WMS stream1',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 126',
  'c=IN IP4 0.0.0.0',
  'a=rtcp:9 IN IP4 0.0.0.0',
  'a=ice-ufrag:gi+W',
  'a=ice-pwd:NmFZpwdpwdpwdpwdpwdpwdpw',
  'a=ice-options:trickle',
  'a=fingerprint:sha-256 41:1D:00:D6',
  'a=setup:active',
  'a=mid:0',
  'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level',
  'a=extmap:5 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
  'a=sendrecv',
  'a=msid:stream1 mictrack',
  'a=rtcp-mux',
  'a=rtpmap:111 opus/48000/2',
  'a=rtcp-fb:111 transport-cc',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'a=rtpmap:126 telephone-event/8000',
  'a=ssrc:1234567 cname:abcd',
  'a=ssrc:1234567 msid:stream1 mictrack',
  'm=video 9 UDP/TLS/RTP/SAVPF 100 96',
  'c=IN IP4 0.0.0.0',
  'a=rtcp:9 IN IP4 0.0.0.0',
  'a=ice-ufrag:gi+W',
  'a=ice-pwd:NmFZpwdpwdpwdpwdpwdpwdpw',
  'a=fingerprint:sha-256 41:1D:00:D6',
  'a=setup:active',
  'a=mid:1',
  'a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
  'a=sendrecv',
  'a=msid:stream1 camtrack',
  'a=rtcp-mux',
  'a=rtpmap:100 VP8/90000',
  'a=rtcp-fb:100 ccm fir',
  'a=rtcp-fb:100 nack',
  'a=rtcp-fb:100 nack pli',
  'a=rtpmap:96 rtx/90000',
  'a=fmtp:96 apt=100',
  'a=ssrc-group:FID 11 12',
  'a=ssrc:11 cname:abcd',
  'a=ssrc:11 msid:stream1 camtrack',
  'a=ssrc:12 cname:abcd',
  'a=ssrc:12 msid:stream1 camtrack',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 126',
  'c=IN IP4 0.0.0.0',
  'a=mid:2',
  'a=recvonly',
  'a=rtcp-mux',
  'a=rtpmap:111 opus/48000/2',
  'm=video 9 UDP/TLS/RTP/SAVPF 100 96',
  'c=IN IP4 0.0.0.0',
  'a=mid:3',
  'a=recvonly',
  'a=rtcp-mux',
  'a=rtpmap:100 VP8/90000',
  '',
].join('\r\n');
