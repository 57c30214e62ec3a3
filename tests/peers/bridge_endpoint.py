"""A WebRTC endpoint for the bridge's integration tests, built on aiortc (not str0m).

Protocol (JSON lines):
  stdin, first line: {"offer": <EndpointOffer as serde JSON>,
                      "audio": bool,                 # send an audio track
                      "video_layers": [[w, h], ...], # one video track per simulcast layer
                      "remote": [{"kind": "audio"|"video", "ssrc": n, "rtx": n|null}],
                      "drop_one": bool}              # drop one incoming video packet (NACK test)
  stdin, later lines: {"cmd": "pli"} (send a PLI for every received video stream),
                      {"cmd": "bogus_rtp"} (send SRTP with an unsignalled SSRC),
                      {"cmd": "bogus_rtcp"} (send SRTCP whose length field lies), {"cmd": "quit"}
  stdout: {"event": "answer", ...transport and SSRCs...}, then {"event": "stats", ...} every
          0.5 s.

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
import sys
import time

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtcpPsfbPacket, RtpPacket
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
}
DROP_ONE = False


# --- hooks into aiortc to observe RTP/RTCP (the library offers no public API for this) ---
original_rtp = RTCRtpReceiver._handle_rtp_packet


async def observed_rtp(self, packet, arrival_time_ms):
    global DROP_ONE
    ssrc = packet.ssrc
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
            cmd = json.loads(line).get("cmd")
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
