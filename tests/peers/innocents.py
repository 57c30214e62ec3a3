#!/usr/bin/env python3
"""Innocent occupants of one room, chatting through slixmpp while the server is attacked
(crates/convene/tests/hostile/). Run as

    innocents.py chat port=C2S_PORT domain=DOMAIN room=ROOM_JID clients=N first=I total=T rate=R

N slixmpp clients (anonymous, STARTTLS), nicks innocent<I>..innocent<I+N-1> of the T that
all peers run, join the room; together the T send R group-chat messages a second (each
one every T/R seconds, staggered by its index).

JSON lines. stdin: {"phase": NAME} (messages sent from then on belong to NAME; the first
starts the chat, once every peer's clients have joined),
{"cmd": "stop"} (stop sending, wait a second for what is in flight, report, exit).
stdout: {"event": "joined"} once every client is in the room; at the end
{"event": "report", "sent": {id: phase}, "received": {id: [count per client]},
 "latencies": {phase: [ms, ...]}, "disconnected": n}: a latency for every message each
client received (its own echo included), measured from the sender's send time on the
machine's monotonic clock (shared by the peers' processes).
"""
import asyncio
import json
import sys
import time

from common import ARGS, TIMEOUT, emit
from xmpp_client import TrustingClient

DOMAIN = ARGS["domain"]
ROOM = ARGS["room"]
CLIENTS = int(ARGS["clients"])
FIRST = int(ARGS["first"])
TOTAL = int(ARGS["total"])
RATE = float(ARGS["rate"])

STATE = {"phase": None, "sending": True}
SENT = {}  # id -> phase
RECEIVED = {}  # id -> [count per local client]
LATENCIES = {}  # phase -> [ms]


class Innocent(TrustingClient):
    def __init__(self, slot):
        super().__init__(DOMAIN)
        for plugin in ("xep_0030", "xep_0004", "xep_0045"):
            self.register_plugin(plugin)
        self.slot = slot
        self.disconnects = 0
        self.add_event_handler("groupchat_message", self._message)
        self.add_event_handler("disconnected", self._gone)

    def _gone(self, _event):
        self.disconnects += 1

    def _message(self, message):
        body = message["body"]
        if not body.startswith("innocent|"):
            return
        now = time.monotonic()
        _, ident, phase, sent = body.split("|")
        counts = RECEIVED.setdefault(ident, [0] * CLIENTS)
        counts[self.slot] += 1
        LATENCIES.setdefault(phase, []).append((now - float(sent)) * 1000)


async def chat(client, index):
    """Sends this client's share of the room's chat until told to stop."""
    period = TOTAL / RATE
    start = time.monotonic() + index * (1 / RATE)
    seq = 0
    while STATE["sending"]:
        await asyncio.sleep(max(0, start + seq * period - time.monotonic()))
        if not STATE["sending"]:
            return
        ident = f"{index}-{seq}"
        phase = STATE["phase"]
        SENT[ident] = phase
        client.send_message(mto=ROOM, mbody=f"innocent|{ident}|{phase}|{time.monotonic()}", mtype="groupchat")
        seq += 1


async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    clients = [Innocent(slot) for slot in range(CLIENTS)]
    for client in clients:
        await client.start()
    for slot, client in enumerate(clients):
        await client.plugin["xep_0045"].join_muc_wait(ROOM, f"innocent{FIRST + slot}", maxchars=0, timeout=TIMEOUT)
    emit({"event": "joined"})
    senders = []
    while True:
        line = await reader.readline()
        if not line:
            break
        command = json.loads(line)
        if "phase" in command:
            STATE["phase"] = command["phase"]
            if not senders:
                senders = [asyncio.ensure_future(chat(client, FIRST + slot)) for slot, client in enumerate(clients)]
        elif command.get("cmd") == "stop":
            break
    STATE["sending"] = False
    await asyncio.gather(*senders)
    await asyncio.sleep(1)
    emit({
        "event": "report",
        "sent": SENT,
        "received": RECEIVED,
        "latencies": LATENCIES,
        "disconnected": sum(client.disconnects for client in clients),
    })


if __name__ == "__main__":
    asyncio.run(main())
