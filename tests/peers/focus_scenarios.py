#!/usr/bin/env python3
"""Jitsi-style participants, written with slixmpp and aiortc (libraries we did not write),
talking to a running Convene XMPP server with the focus and the bridge attached.

Run by crates/focus/tests/xmpp_peer.rs as
    focus_scenarios.py SCENARIO port=C2S_PORT domain=DOMAIN
Each participant logs in anonymously, sends the focus's conference request, joins the room
and answers the focus's Jingle the way lib-jitsi-meet does (its session-accept and
source-add shapes).
  conference: signalling only (offers, sources, hostile answers, leaving).
  media: aiortc turns the focus's offers into SDP and answers them; bob must decode
         alice's audio and video, forwarded by the bridge.
Raises on the first unexpected answer; success prints "PASS <scenario>".
"""
import asyncio
import sys
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from common import DOMAIN, TIMEOUT, check, loopback_ice, q
from sdp import media_section, session
from xmpp_client import TrustingClient

ROOM = f"standup@conference.{DOMAIN}"
FOCUS_JID = f"focus@auth.{DOMAIN}"

JINGLE = "urn:xmpp:jingle:1"
RTP = "urn:xmpp:jingle:apps:rtp:1"
SSMA = "urn:xmpp:jingle:apps:rtp:ssma:0"
ICE = "urn:xmpp:jingle:transports:ice-udp:1"
DTLS = "urn:xmpp:jingle:apps:dtls:0"
FOCUS = "http://jitsi.org/protocol/focus"
MUC_USER = "http://jabber.org/protocol/muc#user"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class Participant(TrustingClient):
    """An anonymous participant that acks and queues every Jingle request from the focus."""

    def __init__(self, nick):
        super().__init__(DOMAIN, mechanism="ANONYMOUS")
        self.nick = nick
        self.jingles = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.add_event_handler("presence", self.presences.put_nowait)
        self.register_handler(
            Callback(
                "jingle",
                MatchXPath(f"{{jabber:client}}iq/{q(JINGLE, 'jingle')}"),
                self._on_jingle,
            )
        )

    def _on_jingle(self, iq):
        if iq["type"] != "set":
            return
        check(iq["from"].full == f"{ROOM}/focus", f"Jingle from {iq['from']}")
        self.jingles.put_nowait(iq.xml.find(q(JINGLE, "jingle")))
        iq.reply().send()

    async def conference_request(self):
        iq = self.make_iq_set(ito=f"focus.{DOMAIN}")
        iq.append(ET.Element(q(FOCUS, "conference"), {"room": ROOM, "machine-uid": self.nick}))
        answer = await iq.send(timeout=TIMEOUT)
        conference = answer.xml.find(q(FOCUS, "conference"))
        check(answer["from"].full == f"focus.{DOMAIN}", "answered from the focus address")
        check(conference.get("ready") == "true", f"room ready: {ET.tostring(conference)}")
        check(conference.get("focusjid") == FOCUS_JID, "focusjid")

    def join(self):
        presence = self.make_presence(pto=f"{ROOM}/{self.nick}")
        presence.append(ET.Element("{http://jabber.org/protocol/muc}x"))
        presence.send()

    def leave(self):
        self.make_presence(pto=f"{ROOM}/{self.nick}", ptype="unavailable").send()

    async def presence_where(self, predicate, what):
        async def wait():
            while True:
                presence = await self.presences.get()
                if predicate(presence):
                    return presence

        try:
            return await asyncio.wait_for(wait(), TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.nick}: no presence where {what}")

    async def next_jingle(self, action):
        try:
            jingle = await asyncio.wait_for(self.jingles.get(), TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.nick}: no {action}")
        check(jingle.get("action") == action, f"{self.nick}: {jingle.get('action')} instead of {action}")
        return jingle

    async def send_jingle(self, jingle):
        iq = self.make_iq_set(ito=f"{ROOM}/focus")
        iq.append(jingle)
        return await iq.send(timeout=TIMEOUT)

    async def refused(self, jingle):
        """Sends `jingle`, expects an error: returns (condition, has unknown-session)."""
        try:
            await self.send_jingle(jingle)
        except IqError as e:
            error = e.iq.xml.find("{jabber:client}error")
            condition = next(c.tag.split("}")[1] for c in error if c.tag.startswith(f"{{{STANZAS}}}") and not c.tag.endswith("text"))
            unknown = error.find("{urn:xmpp:jingle:errors:1}unknown-session") is not None
            return condition, unknown
        raise AssertionError(f"{self.nick}: accepted {ET.tostring(jingle)}")


def item_of(presence):
    x = presence.xml.find(q(MUC_USER, "x"))
    return None if x is None else x.find(q(MUC_USER, "item"))


def source(ssrc, name, msid, video_type=None):
    el = ET.Element(q(SSMA, "source"), {"ssrc": str(ssrc), "name": name})
    if video_type:
        el.set("videoType", video_type)
    ET.SubElement(el, q(SSMA, "parameter"), {"name": "msid", "value": msid})
    return el


def group(semantics, ssrcs):
    el = ET.Element(q(SSMA, "ssrc-group"), {"semantics": semantics})
    for ssrc in ssrcs:
        ET.SubElement(el, q(SSMA, "source"), {"ssrc": str(ssrc)})
    return el


def sources_of(nick, base):
    """A microphone and a camera with RTX, as lib-jitsi-meet signals them."""
    return {
        "audio": [source(base + 1, f"{nick}-a0", f"{nick}-audio-0-1 a{base}")],
        "video": [
            source(base + 11, f"{nick}-v0", f"{nick}-video-0-1 v{base}", "camera"),
            source(base + 12, f"{nick}-v0", f"{nick}-video-0-1 v{base}", "camera"),
            group("FID", [base + 11, base + 12]),
        ],
    }


def jingle(action, sid, contents):
    el = ET.Element(q(JINGLE, "jingle"), {"action": action, "sid": sid})
    for name, children in contents.items():
        content = ET.SubElement(el, q(JINGLE, "content"), {"name": name, "creator": "responder", "senders": "both"})
        description = ET.SubElement(content, q(RTP, "description"), {"media": name})
        description.extend(children)
    return el


def session_accept(offer, nick, base):
    """Echoes the offered codecs (as a browser answer would) and adds transport and sources."""
    answer = jingle("session-accept", offer.get("sid"), sources_of(nick, base))
    for content in answer.findall(q(JINGLE, "content")):
        offered = offer.find(f"{q(JINGLE, 'content')}[@name='{content.get('name')}']")
        description = content.find(q(RTP, "description"))
        for payload_type in offered.find(q(RTP, "description")).findall(q(RTP, "payload-type")):
            description.insert(0, payload_type)
        transport = ET.SubElement(content, q(ICE, "transport"), {"ufrag": f"uf{nick}", "pwd": "answerpasswordanswerpassword"})
        fingerprint = ET.SubElement(transport, q(DTLS, "fingerprint"), {"hash": "sha-256", "setup": "active"})
        fingerprint.text = ":".join(["5A"] * 32)
    return answer


def ssrcs_by_owner(jingle_el):
    found = set()
    for description in jingle_el.iter(q(RTP, "description")):
        for src in description.findall(q(SSMA, "source")):
            info = src.find("{http://jitsi.org/jitmeet}ssrc-info")
            found.add((info.get("owner"), int(src.get("ssrc"))))
    return found


async def conference():
    alice = await Participant("a11ce000").start()
    await alice.conference_request()
    alice.join()
    await alice.presence_where(
        lambda p: p["from"].resource == "focus"
        and item_of(p) is not None
        and item_of(p).get("jid", "").startswith(FOCUS_JID + "/"),
        "the focus is in the room with its real JID",
    )
    offer_a = await alice.next_jingle("session-initiate")
    contents = offer_a.findall(q(JINGLE, "content"))
    check([c.get("name") for c in contents] == ["audio", "video"], "audio and video contents")
    transport = contents[0].find(q(ICE, "transport"))
    check(transport.get("ufrag") and transport.get("pwd"), "bridge ICE credentials")
    check(transport.find(q(DTLS, "fingerprint")).get("setup") == "actpass", "setup actpass")
    candidates = transport.findall(q(ICE, "candidate"))
    check(candidates and all(c.get("ip") == "127.0.0.1" for c in candidates), "loopback candidates")
    check(transport.find("{http://jitsi.org/protocol/colibri}web-socket") is not None, "bridge channel URL")
    check(offer_a.find("{urn:xmpp:jingle:apps:grouping:0}group").get("semantics") == "BUNDLE", "BUNDLE")
    check({o for o, _ in ssrcs_by_owner(offer_a)} == {"jvb"}, "alone: only the bridge's sources")
    await alice.presence_where(
        lambda p: p["from"].resource == alice.nick and item_of(p) is not None and item_of(p).get("role") == "moderator",
        "alice was made moderator",
    )
    await alice.send_jingle(session_accept(offer_a, alice.nick, 1000))

    bob = await Participant("b0b00000").start()
    await bob.conference_request()
    bob.join()
    offer_b = await bob.next_jingle("session-initiate")
    check(
        {("a11ce000", 1001), ("a11ce000", 1011), ("a11ce000", 1012)} <= ssrcs_by_owner(offer_b),
        f"bob is offered alice's sources: {ssrcs_by_owner(offer_b)}",
    )
    await bob.send_jingle(session_accept(offer_b, bob.nick, 2000))
    added = await alice.next_jingle("source-add")
    check(ssrcs_by_owner(added) == {("b0b00000", 2001), ("b0b00000", 2011), ("b0b00000", 2012)}, "alice learns bob's sources")

    # Hostile input from bob: refused, and alice hears nothing of it.
    check(await bob.refused(session_accept(offer_a, bob.nick, 3000)) == ("item-not-found", True), "answer for alice's session")
    stolen = jingle("source-add", offer_b.get("sid"), {"video": [source(1011, "b0b00000-v1", "x y")]})
    check(await bob.refused(stolen) == ("bad-request", False), "alice's SSRC")

    # bob shares his screen.
    desktop = jingle("source-add", offer_b.get("sid"), {"video": [source(2077, "b0b00000-v1", "b0b00000-video-1-1 d", "desktop")]})
    await bob.send_jingle(desktop)
    added = await alice.next_jingle("source-add")
    check(ssrcs_by_owner(added) == {("b0b00000", 2077)}, "alice learns bob's screen share")
    check(added.find(f".//{q(SSMA, 'source')}").get("videoType") == "desktop", "desktop video type")

    bob.leave()
    removed = await alice.next_jingle("source-remove")
    check(
        ssrcs_by_owner(removed) == {("b0b00000", s) for s in (2001, 2011, 2012, 2077)},
        f"alice drops bob's sources: {ssrcs_by_owner(removed)}",
    )
    check(alice.jingles.empty(), "nothing else for alice")
    alice.leave()
    for participant in (alice, bob):
        participant.disconnect()
        await participant.wait_until("disconnected", TIMEOUT)
    print("PASS conference")


# --- media: aiortc peers (a WebRTC stack we did not write) answering the focus's offers ---


def offer_sdp(offer):
    """The SDP a Jitsi client derives from a session-initiate: one m-line per content,
    BUNDLE, the bridge's transport, and the other participants' sources (not the bridge's
    feedback SSRCs, which need no track). Video is kept to VP8 and its RTX for aiortc."""
    contents = offer.findall(q(JINGLE, "content"))
    return session([c.get("name") for c in contents], [content_section(c) for c in contents])


def content_section(content):
    description = content.find(q(RTP, "description"))
    kind = description.get("media")
    pts = description.findall(q(RTP, "payload-type"))
    if kind == "video":
        vp8 = [p.get("id") for p in pts if p.get("name") == "VP8"]
        pts = [
            p for p in pts
            if p.get("name") == "VP8"
            or (p.get("name") == "rtx" and any(x.get("name") == "apt" and x.get("value") in vp8 for x in p))
        ]
    payload_types = [
        {
            "id": pt.get("id"), "name": pt.get("name"), "clockrate": pt.get("clockrate"), "channels": pt.get("channels"),
            "parameters": [(x.get("name"), x.get("value")) for x in pt if x.tag.endswith("parameter")],
            "rtcp_fb": [(fb.get("type"), fb.get("subtype")) for fb in pt.findall("{urn:xmpp:jingle:apps:rtp:rtcp-fb:0}rtcp-fb")],
        }
        for pt in pts
    ]
    transport = content.find(q(ICE, "transport"))
    fingerprint = transport.find(q(DTLS, "fingerprint"))
    transport_info = {
        "ufrag": transport.get("ufrag"), "pwd": transport.get("pwd"),
        "fingerprints": [(fingerprint.get("hash"), fingerprint.text.strip())], "setup": fingerprint.get("setup"),
        "candidates": [
            {key: c.get(key) for key in ("foundation", "component", "protocol", "priority", "ip", "port")} | {"typ": c.get("type")}
            for c in transport.findall(q(ICE, "candidate"))
        ],
    }
    extensions = [(ext.get("id"), ext.get("uri")) for ext in description.findall("{urn:xmpp:jingle:apps:rtp:rtp-hdrext:0}rtp-hdrext")]
    groups = [(g.get("semantics"), [x.get("ssrc") for x in g]) for g in description.findall(q(SSMA, "ssrc-group"))]
    sources = []
    for src in description.findall(q(SSMA, "source")):
        owner = src.find("{http://jitsi.org/jitmeet}ssrc-info").get("owner")
        if owner != "jvb":
            sources.append((src.get("ssrc"), owner, next(x.get("value") for x in src if x.get("name") == "msid")))
    return media_section(kind, content.get("name"), payload_types, transport_info, extensions, groups, sources)


def answer_jingle(offer, sdp, nick):
    """The session-accept lib-jitsi-meet would send for `sdp` (SDP.ts toJingle, in short)."""
    answer = ET.Element(q(JINGLE, "jingle"), {"action": "session-accept", "sid": offer.get("sid")})
    sections = ("\r\n" + sdp).split("\r\nm=")[1:]
    session = sdp.split("\r\nm=")[0]
    for section, content in zip(sections, offer.findall(q(JINGLE, "content"))):
        lines = ("m=" + section).split("\r\n")
        kind = lines[0][2:].split()[0]
        accepted = lines[0].split()[3:]
        attr = lambda name: [l[len(name) + 3:] for l in lines + session.split("\r\n") if l.startswith(f"a={name}:")]
        out = ET.SubElement(answer, q(JINGLE, "content"), {"creator": "responder", "name": content.get("name"), "senders": "both"})
        description = ET.SubElement(out, q(RTP, "description"), {"media": kind})
        for pt in content.find(q(RTP, "description")).findall(q(RTP, "payload-type")):
            if pt.get("id") in accepted:
                description.append(pt)
        msids = {}
        for line in attr("ssrc"):
            ssrc, rest = line.split(" ", 1)
            if rest.startswith("msid:"):
                msids[ssrc] = rest[len("msid:"):]
        if not msids and attr("msid"):
            msids = {line.split(" ", 1)[0]: attr("msid")[0] for line in attr("ssrc")}
        for ssrc, msid in msids.items():
            description.append(source(int(ssrc), f"{nick}-{kind[0]}0", msid, "camera" if kind == "video" else None))
        for line in attr("ssrc-group"):
            semantics, *ssrcs = line.split()
            description.append(group(semantics, [int(x) for x in ssrcs]))
        ET.SubElement(description, q(RTP, "rtcp-mux"))
        transport = ET.SubElement(out, q(ICE, "transport"), {"ufrag": attr("ice-ufrag")[0], "pwd": attr("ice-pwd")[0]})
        hash_, value = attr("fingerprint")[0].split(" ", 1)
        fingerprint = ET.SubElement(transport, q(DTLS, "fingerprint"), {"hash": hash_, "setup": attr("setup")[0]})
        fingerprint.text = value
        for i, line in enumerate(attr("candidate")):
            foundation, component, protocol, priority, ip, port, _, typ = line.split()[:8]
            ET.SubElement(transport, q(ICE, "candidate"), {
                "foundation": foundation, "component": component, "protocol": protocol.lower(),
                "priority": priority, "ip": ip, "port": port, "type": typ, "generation": "0",
                "id": f"{nick}{i}", "network": "0",
            })
    return answer


async def answer_with_aiortc(participant, offer, send, on_track=None):
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    pc = RTCPeerConnection()
    if on_track:
        pc.on("track", on_track)
    await pc.setRemoteDescription(RTCSessionDescription(offer_sdp(offer), "offer"))
    if send:
        pc.addTrack(AudioStreamTrack())
        pc.addTrack(VideoStreamTrack())
    await pc.setLocalDescription(await pc.createAnswer())
    await participant.send_jingle(answer_jingle(offer, pc.localDescription.sdp, participant.nick))
    return pc


async def media():
    import time

    loopback_ice()

    alice = await Participant("a11ce000").start()
    await alice.conference_request()
    alice.join()
    alice_pc = await answer_with_aiortc(alice, await alice.next_jingle("session-initiate"), send=True)

    started = time.monotonic()
    bob = await Participant("b0b00000").start()
    await bob.conference_request()
    bob.join()
    offer = await bob.next_jingle("session-initiate")
    check({o for o, _ in ssrcs_by_owner(offer)} == {"jvb", "a11ce000"}, "bob is offered alice's sources")
    frames = {"audio": asyncio.get_event_loop().create_future(), "video": asyncio.get_event_loop().create_future()}
    counts = {"audio": 0, "video": 0}

    async def consume(track):
        while True:
            try:
                await track.recv()
            except Exception:
                return
            counts[track.kind] += 1
            if counts[track.kind] >= 10 and not frames[track.kind].done():
                frames[track.kind].set_result(time.monotonic() - started)

    bob_pc = await answer_with_aiortc(bob, offer, send=False, on_track=lambda t: asyncio.ensure_future(consume(t)))
    try:
        video_after = await asyncio.wait_for(frames["video"], 30)
        audio_after = await asyncio.wait_for(frames["audio"], 30)
    except asyncio.TimeoutError:
        raise AssertionError(f"bob decoded too little of alice's media: {counts}")
    print(f"bob joined -> 10 decoded video frames from alice in {video_after:.2f} s, audio in {audio_after:.2f} s")
    for pc in (alice_pc, bob_pc):
        await pc.close()
    for participant in (alice, bob):
        participant.leave()
        participant.disconnect()
        await participant.wait_until("disconnected", TIMEOUT)
    print("PASS media")


SCENARIOS = {"conference": conference, "media": media}

if __name__ == "__main__":
    asyncio.run(SCENARIOS[sys.argv[1]]())
