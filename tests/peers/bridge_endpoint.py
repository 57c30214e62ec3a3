"""A WebRTC endpoint for the bridge's integration tests, built on aiortc (not str0m).

Protocol (JSON lines):
  stdin, first line: {"offer": <EndpointOffer as serde JSON>,
                      "audio": bool,                 # send an audio track
                      "video_layers": [[w, h], ...], # one video track per simulcast layer
                      "remote": [{"kind": "audio"|"video", "ssrc": n, "rtx": n|null}],
                      "drop_one": bool,              # drop one incoming video packet (NACK test)
                      "flood_ssrc": n}               # one more SSRC to signal, for "flood"
  stdin, later lines: {"cmd": "pli"} (send a PLI for every received video stream),
                      {"cmd": "bogus_rtp"} (send SRTP with an unsignalled SSRC),
                      {"cmd": "bogus_rtcp"} (send SRTCP whose length field lies),
                      {"cmd": "phase", "name": s} (what is received from now on is
                      measured as phase s: see "phases" in the stats),
                      {"cmd": "flood", "pps": n, "bytes": n, "seconds": s} (valid SRTP on
                      flood_ssrc at n packets a second),
                      {"cmd": "garbage", "pps": n, "seconds": s} (random datagrams in every
                      RFC 7983 range, on the established ICE pair),
                      {"cmd": "rtcp_storm", "ssrc": n, "pps": n, "seconds": s} (PLI, NACK,
                      bogus transport-cc and REMB about ssrc, valid SRTCP),
                      {"cmd": "report"} (answered by {"event": "phases", "phases": {phase:
                      {ssrc: {count, expected, min, p50, p99}}}}: packets received and the
                      one-way delay less a constant, ms), {"cmd": "quit"}
  stdout: {"event": "answer", ...transport and SSRCs...}, then {"event": "stats", ...} every
          0.5 s; {"event": "done", "cmd": s} when an attack command has finished.

The bridge is the offerer (as in Jingle), so this script turns the EndpointOffer into an SDP
offer, lets aiortc answer, and reports what the focus would read from a session-accept.
The simulcast layers are separate tracks (one m-line each): the bridge demultiplexes by
SSRC only, so to it they are exactly an SSRC-signalled SIM group.
"""

import asyncio
import array
import fractions
import json
import math
import os
import random
import struct
import sys
import time

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RTCP_PSFB, RTCP_RTPFB, RtcpPsfbPacket, RtcpRtpfbPacket, RtpPacket, pack_rtcp_packet
from av import AudioFrame, VideoFrame

from common import emit, loopback_ice
from sdp import media_section, session

loopback_ice()

STATE = {
    "received": {},  # ssrc -> {"packets", "out_of_order", "last_seq"}
    "frames": {},  # track id -> {"kind", "count", "heights"}
    "plis_received": 0,
    "dropped_seq": None,
    "recovered": False,
    "rtx_map": {},  # rtx ssrc -> primary ssrc
    "phase": "start",
    # phase -> ssrc -> {"count", "first", "last" (extended sequence numbers), "delays" [ms]}
    "phases": {},
}
# ssrc -> (extended sequence number of the last packet, first RTP timestamp)
UNWRAP = {}
DROP_ONE = False


# --- hooks into aiortc to observe RTP/RTCP (the library offers no public API for this) ---
original_rtp = RTCRtpReceiver._handle_rtp_packet


def measure(packet):
    """Counts the packet in the current phase, with its one-way delay less a constant:
    arrival time minus its RTP timestamp (48 kHz audio, 90 kHz video)."""
    now = time.monotonic() * 1000
    highest, ts0 = UNWRAP.get(packet.ssrc, (packet.sequence_number, packet.timestamp))
    step = (packet.sequence_number - highest) & 0xFFFF
    ext = highest + (step if step < 0x8000 else step - 0x10000)
    UNWRAP[packet.ssrc] = (max(highest, ext), ts0)
    clock = 48 if packet.payload_type == 111 else 90
    elapsed = (packet.timestamp - ts0) & 0xFFFFFFFF
    elapsed = elapsed - (1 << 32) if elapsed >= 1 << 31 else elapsed
    entry = STATE["phases"].setdefault(STATE["phase"], {}).setdefault(
        packet.ssrc, {"count": 0, "first": ext, "last": ext, "delays": []}
    )
    entry["count"] += 1
    entry["first"], entry["last"] = min(entry["first"], ext), max(entry["last"], ext)
    entry["delays"].append(round(now - elapsed / clock, 3))


def percentiles(phases):
    """Per phase and SSRC: packets, expected, and the delays' minimum, p50 and p99."""
    out = {}
    for phase, ssrcs in phases.items():
        for ssrc, e in ssrcs.items():
            d = sorted(e["delays"])
            out.setdefault(phase, {})[str(ssrc)] = {
                "count": e["count"],
                "expected": e["last"] - e["first"] + 1,
                "min": d[0],
                "p50": d[len(d) // 2],
                "p99": d[min(len(d) - 1, len(d) * 99 // 100)],
            }
    return out


async def observed_rtp(self, packet, arrival_time_ms):
    global DROP_ONE
    ssrc = packet.ssrc
    if ssrc not in STATE["rtx_map"]:
        measure(packet)
    if ssrc in STATE["rtx_map"]:
        if len(packet.payload) >= 2:
            osn = int.from_bytes(packet.payload[:2], "big")
            if osn == STATE["dropped_seq"]:
                STATE["recovered"] = True
        return await original_rtp(self, packet, arrival_time_ms)
    stats = STATE["received"].setdefault(
        ssrc, {"packets": 0, "out_of_order": 0, "last_seq": None}
    )
    if DROP_ONE and stats["packets"] == 40 and packet.payload_type != 111:
        DROP_ONE = False
        STATE["dropped_seq"] = packet.sequence_number
        stats["packets"] += 1
        stats["last_seq"] = packet.sequence_number
        return
    last = stats["last_seq"]
    if last is not None and ((packet.sequence_number - last) & 0xFFFF) >= 0x8000:
        stats["out_of_order"] += 1
    else:
        stats["last_seq"] = packet.sequence_number
    stats["packets"] += 1
    return await original_rtp(self, packet, arrival_time_ms)


RTCRtpReceiver._handle_rtp_packet = observed_rtp

original_sender_rtcp = RTCRtpSender._handle_rtcp_packet


async def observed_sender_rtcp(self, packet):
    if isinstance(packet, RtcpPsfbPacket) and packet.fmt == 1:
        STATE["plis_received"] += 1
    return await original_sender_rtcp(self, packet)


RTCRtpSender._handle_rtcp_packet = observed_sender_rtcp


# --- media sources ---
class PatternVideo(VideoStreamTrack):
    """Moving gradient frames of a fixed size (VP8 needs changing content to stay busy)."""

    def __init__(self, width, height):
        super().__init__()
        self.width, self.height = width, height
        self.n = 0
        self.gradient = bytes(range(256)) * (width * height // 256 + 2)

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        self.n += 1
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        luma = frame.planes[0]
        shift = (self.n * 4) % 256
        luma.update(self.gradient[shift : shift + luma.buffer_size])
        for chroma in frame.planes[1:]:
            chroma.update(bytes([128]) * chroma.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


# 20 ms of a loud 440 Hz tone, stereo s16, so that audio levels say someone is speaking.
TONE = array.array(
    "h",
    [int(12000 * math.sin(2 * math.pi * 440 * i / 48000)) for i in range(960) for _ in (0, 1)],
).tobytes()


class ToneAudio(AudioStreamTrack):
    async def recv(self):
        if not hasattr(self, "_start"):
            self._start, self._pts = time.time(), 0
        else:
            self._pts += 960
            await asyncio.sleep(max(0, self._start + self._pts / 48000 - time.time()))
        frame = AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(TONE)
        frame.pts, frame.sample_rate = self._pts, 48000
        frame.time_base = fractions.Fraction(1, 48000)
        return frame


# --- SDP from the bridge's EndpointOffer ---
def offer_section(desc, mid, transport, remote):
    kind = desc["kind"]
    if kind == "video":
        # aiortc answers VP8 (+RTX) from what we offer; keep the offer to those.
        pts = [p for p in desc["payload_types"] if p["name"] in ("VP8",)]
        vp8 = [p["id"] for p in pts]
        pts += [
            p
            for p in desc["payload_types"]
            if p["name"] == "rtx" and ("apt", str(vp8[0])) in map(tuple, p["parameters"])
        ]
    else:
        pts = desc["payload_types"]
    transport_info = {
        **transport,
        "fingerprints": [(fp["hash"], fp["value"]) for fp in transport["fingerprints"]],
        "setup": "actpass",
    }
    extensions = [(ext["id"], ext["uri"]) for ext in desc["header_extensions"]]
    groups, sources = [], []
    for r in remote:
        msid = f"bridge-{r['ssrc']} track-{r['ssrc']}"
        ssrcs = [r["ssrc"]] + ([r["rtx"]] if r.get("rtx") else [])
        if len(ssrcs) == 2:
            groups.append(("FID", ssrcs))
        sources += [(s, f"bridge-{r['ssrc']}", msid) for s in ssrcs]
    return media_section(kind, mid, pts, transport_info, extensions, groups, sources)


def build_offer(offer, remote, video_sections):
    audio = next(m for m in offer["media"] if m["kind"] == "audio")
    video = next(m for m in offer["media"] if m["kind"] == "video")
    transport = offer["transport"]
    remote_audio = [r for r in remote if r["kind"] == "audio"]
    remote_video = [r for r in remote if r["kind"] == "video"]
    sections = [(audio, remote_audio[:1])]
    # One m-line per remote video track or per local layer, whichever needs more.
    count = max(video_sections, len(remote_video), 1)
    for i in range(count):
        sections.append((video, remote_video[i : i + 1]))
    for i, r in enumerate(remote_audio[1:]):
        sections.append((audio, [r]))
    mids = [str(i) for i in range(len(sections))]
    return session(mids, [offer_section(desc, mid, transport, rem) for mid, (desc, rem) in zip(mids, sections)])


def parse_answer(sdp):
    out = {"ufrag": None, "pwd": None, "fingerprints": [], "candidates": [], "sections": []}
    section = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            section = {"kind": line[2:].split()[0], "ssrcs": [], "fid": []}
            out["sections"].append(section)
        elif line.startswith("a=ice-ufrag:"):
            out["ufrag"] = line.split(":", 1)[1]
        elif line.startswith("a=ice-pwd:"):
            out["pwd"] = line.split(":", 1)[1]
        elif line.startswith("a=fingerprint:") and not out["fingerprints"]:
            hash_, value = line.split(":", 1)[1].split(" ", 1)
            out["fingerprints"].append({"hash": hash_, "value": value})
        elif line.startswith("a=setup:"):
            out["setup"] = line.split(":", 1)[1]
        elif line.startswith("a=candidate:") and section is not None:
            parts = line[len("a=candidate:") :].split()
            c = {
                "foundation": parts[0],
                "component": int(parts[1]),
                "protocol": parts[2].lower(),
                "priority": int(parts[3]),
                "ip": parts[4],
                "port": int(parts[5]),
                "typ": parts[7],
            }
            if c not in out["candidates"]:
                out["candidates"].append(c)
        elif line.startswith("a=ssrc-group:FID"):
            a, b = line.split()[1:3]
            section["fid"].append([int(a), int(b)])
        elif line.startswith("a=ssrc:"):
            ssrc = int(line[len("a=ssrc:") :].split()[0])
            if ssrc not in section["ssrcs"]:
                section["ssrcs"].append(ssrc)
    return out


async def consume(track):
    entry = STATE["frames"].setdefault(
        track.id, {"kind": track.kind, "count": 0, "heights": {}}
    )
    while True:
        try:
            frame = await track.recv()
        except Exception:
            return
        entry["count"] += 1
        if track.kind == "video":
            h = str(frame.height)
            entry["heights"][h] = entry["heights"].get(h, 0) + 1


# --- attacks on an established session (all through aiortc's own transports) ---
async def paced(pps, seconds, send):
    """Calls `send(i)` `pps` times a second for `seconds`, in 10 ms ticks."""
    per_tick, tick = max(1, round(pps / 100)), 0.01
    start, i = time.monotonic(), 0
    while time.monotonic() < start + seconds:
        for _ in range(per_tick):
            await send(i)
            i += 1
        await asyncio.sleep(max(0, start + (i / per_tick) * tick - time.monotonic()))


async def flood(dtls, ssrc, pps, size, seconds):
    """Valid SRTP on a signalled SSRC, far beyond its budget (VP8 payload type)."""
    payload = b"\x10" + os.urandom(size - 13)

    async def send(i):
        packet = RtpPacket(payload_type=100, sequence_number=i & 0xFFFF, timestamp=i * 900 & 0xFFFFFFFF, ssrc=ssrc)
        packet.payload = payload
        await dtls._send_rtp(packet.serialize())

    await paced(pps, seconds, send)


async def garbage(dtls, own_ssrc, pps, seconds):
    """Random datagrams on the ICE pair the bridge validated: in every RFC 7983 range
    (STUN, DTLS, junk, RTP/RTCP, junk), and SRTP-looking ones naming our own signalled
    SSRC, whose authentication fails inside str0m."""
    ranges = [(0, 3), (20, 63), (64, 127), (128, 191), (192, 255)]

    async def send(i):
        if i % 6 == 5:
            header = struct.pack("!BBHLL", 0x80, 111, i & 0xFFFF, i * 960 & 0xFFFFFFFF, own_ssrc)
            data = header + os.urandom(random.randint(20, 200))
        else:
            low, high = ranges[i % 6]
            data = bytes([random.randint(low, high)]) + os.urandom(random.randint(0, 1100))
        await dtls.transport._send(data)

    await paced(pps, seconds, send)


async def rtcp_storm(dtls, own_ssrc, target, pps, seconds):
    """Feedback about `target` at `pps`, valid SRTCP: PLI, NACK of random packets,
    transport-cc claiming 65535 packet statuses with random chunks, REMB of 1 kb/s."""
    pli = bytes(RtcpPsfbPacket(fmt=1, ssrc=own_ssrc, media_ssrc=target))
    remb = bytes(RtcpPsfbPacket(fmt=15, ssrc=own_ssrc, media_ssrc=0, fci=b"REMB" + bytes([1, 0x00, 0x03, 0xE8]) + struct.pack("!L", target)))

    async def send(i):
        kind = i % 4
        if kind == 0:
            data = pli
        elif kind == 1:
            lost = sorted(random.sample(range(65536), 16))
            data = bytes(RtcpRtpfbPacket(fmt=1, ssrc=own_ssrc, media_ssrc=target, lost=lost))
        elif kind == 2:
            fci = struct.pack("!HH", random.randint(0, 65535), 0xFFFF) + os.urandom(4 + 4 * random.randint(1, 8))
            data = pack_rtcp_packet(RTCP_RTPFB, 15, struct.pack("!LL", own_ssrc, target) + fci)
        else:
            data = remb
        await dtls._send_rtp(data)

    await paced(pps, seconds, send)


async def main():
    global DROP_ONE
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    setup = json.loads(await reader.readline())
    DROP_ONE = setup.get("drop_one", False)
    for r in setup.get("remote", []):
        if r.get("rtx"):
            STATE["rtx_map"][r["rtx"]] = r["ssrc"]

    # max-bundle as in the Jitsi clients (aiortc's balanced policy leaves a second video
    # transceiver on a transport that BUNDLE then discards).
    pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    pc.on("track", lambda track: asyncio.ensure_future(consume(track)))
    layers = setup.get("video_layers", [])
    offer_sdp = build_offer(setup["offer"], setup.get("remote", []), len(layers))
    await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
    if setup.get("audio"):
        pc.addTrack(ToneAudio())
    for w, h in layers:
        pc.addTrack(PatternVideo(w, h))
    await pc.setLocalDescription(await pc.createAnswer())
    answer = parse_answer(pc.localDescription.sdp)
    senders = [s for s in pc.getSenders() if s.track is not None]
    answer["audio"] = [s._ssrc for s in senders if s.track.kind == "audio"]
    answer["video"] = [
        {"ssrc": s._ssrc, "rtx": s._rtx_ssrc, "height": s.track.height}
        for s in senders
        if s.track.kind == "video"
    ]
    emit({"event": "answer", **answer})

    async def commands():
        while True:
            line = await reader.readline()
            if not line:
                return
            command = json.loads(line)
            cmd = command.get("cmd")
            if cmd == "quit":
                return
            if cmd == "pli":
                for t in pc.getTransceivers():
                    if t.kind == "video":
                        for ssrc in list(STATE["received"]):
                            if ssrc not in STATE["rtx_map"]:
                                await t.receiver._send_rtcp_pli(ssrc)
                        break
            if cmd == "bogus_rtp":
                transport = pc.getTransceivers()[0].sender.transport
                for seq in range(5):
                    p = RtpPacket(payload_type=100, sequence_number=seq, timestamp=0, ssrc=0x0BAD_F00D)
                    p.payload = b"\x10" + bytes(100)
                    await transport._send_rtp(p.serialize())
            if cmd == "phase":
                STATE["phase"] = command["name"]
            if cmd == "report":
                emit({"event": "phases", "phases": percentiles(STATE["phases"])})
            if cmd in ("flood", "garbage", "rtcp_storm"):
                dtls = pc.getTransceivers()[0].sender.transport
                own = next(s._ssrc for s in pc.getSenders() if s.track and s.track.kind == "audio")
                attack = {
                    "flood": lambda: flood(dtls, setup["flood_ssrc"], command["pps"], command["bytes"], command["seconds"]),
                    "garbage": lambda: garbage(dtls, own, command["pps"], command["seconds"]),
                    "rtcp_storm": lambda: rtcp_storm(dtls, own, command["ssrc"], command["pps"], command["seconds"]),
                }[cmd]()

                async def finish(attack, cmd):
                    await attack
                    emit({"event": "done", "cmd": cmd})

                asyncio.ensure_future(finish(attack, cmd))
            if cmd == "bogus_rtcp":
                # A sender report whose length field claims far more than the packet holds.
                transport = pc.getTransceivers()[0].sender.transport
                await transport._send_rtp(bytes([0x80, 200, 0x01, 0x00]) + bytes(24))

    async def report():
        while True:
            await asyncio.sleep(0.5)
            emit(
                {
                    "event": "stats",
                    "ice": pc.iceConnectionState,
                    "received": {str(k): v for k, v in STATE["received"].items()},
                    "frames": list(STATE["frames"].values()),
                    "plis_received": STATE["plis_received"],
                    "dropped_seq": STATE["dropped_seq"],
                    "recovered": STATE["recovered"],
                }
            )

    reporter = asyncio.ensure_future(report())
    await commands()
    reporter.cancel()
    await pc.close()


if __name__ == "__main__":
    asyncio.run(main())
