"""Jitsi token logins over RFC 7395, with the `websockets` library as the WebSocket client:
the token rides on the WebSocket URL (`?token=`) as lib-jitsi-meet sends it, SASL is
ANONYMOUS, and a refusal must have the one-line shape lib-jitsi-meet reads the reason from.

Run by `crates/xmpp/tests/tokens.rs` as
`python tests/peers/token_scenarios.py tokens ws=<url> domain=<d> cases=<json file>`; each
case is `{"name", "token", "expect": "ok" | refusal text, "allowed": room, "denied": room,
"user": display name}`; a refusal text must match from its start (the seconds of an
expiry may have moved on).
"""
import asyncio
import json
import re
import sys

import websockets

from common import ARGS, DOMAIN, TIMEOUT, check

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
# lib-jitsi-meet's own pattern (modules/xmpp/xmpp.ts) for the reason of a refused login.
LJM_FAILURE = re.compile(r"<failure.*><not-allowed/><text>(.*)</text></failure>")


def is_error(frame):
    return re.search(r"type=[\"']error[\"']", frame) is not None


class WsClient:
    def __init__(self, ws):
        self.ws = ws

    async def recv(self, marker):
        while True:
            frame = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
            if marker in frame:
                return frame

    async def open(self):
        await self.ws.send(f"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{DOMAIN}' version='1.0'/>")
        return await self.recv("features")

    async def login(self):
        """ANONYMOUS login; returns the `<success>` or `<failure>` frame."""
        features = await self.open()
        check("ANONYMOUS" in features, features)
        await self.ws.send(f"<auth xmlns='{SASL}' mechanism='ANONYMOUS'/>")
        while True:
            frame = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
            if "<success" in frame or "<failure" in frame:
                return frame

    async def bind(self):
        await self.open()
        await self.ws.send("<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        bound = await self.recv("</iq>")
        return re.search(r"<jid>([^<]+)</jid>", bound).group(1)

    async def join(self, room, nick):
        """Joins `room`; returns the presence that answers (self-presence or error)."""
        await self.ws.send(f"<presence xmlns='jabber:client' to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
        while True:
            frame = await self.recv("<presence")
            if re.search(f"from=[\"']{re.escape(room)}/{nick}[\"']", frame) or is_error(frame):
                return frame


async def connect(token):
    url = ARGS["ws"] + ("" if token is None else f"?room=x&token={token}")
    return WsClient(await websockets.connect(url, subprotocols=["xmpp"], max_size=None))


async def run_case(case):
    client = await connect(case["token"])
    answer = await client.login()
    if case["expect"] != "ok":
        found = LJM_FAILURE.search(answer)
        check(found, f"{case['name']}: not a refusal lib-jitsi-meet reads: {answer}")
        check(found.group(1).startswith(case["expect"]), f"{case['name']}: refused with {found.group(1)!r}, wanted {case['expect']!r}")
        await client.ws.close()
        print(f"{case['name']}: refused: {found.group(1)}")
        return
    check("<success" in answer, f"{case['name']}: {answer}")
    jid = await client.bind()
    check(jid.split("@")[1].startswith(DOMAIN), jid)
    nick = jid[:8]
    joined = await client.join(case["allowed"], nick)
    check(not is_error(joined) and re.search(r"status code=[\"']110", joined), f"{case['name']}: join of {case['allowed']}: {joined}")
    name = re.search(r"<identity[^>]*><user><id>[^<]*</id><name>([^<]*)</name>", joined)
    check(name and name.group(1) == case["user"], f"{case['name']}: identity in presence: {joined}")
    refused = await client.join(case["denied"], nick)
    check(is_error(refused) and "<not-allowed" in refused and "room-mismatch" in refused
          and "Room and token mismatched" in refused, f"{case['name']}: join of {case['denied']}: {refused}")
    await client.ws.close()
    print(f"{case['name']}: joined {case['allowed']}, refused {case['denied']}")


async def tokens():
    with open(ARGS["cases"]) as f:
        cases = json.load(f)
    for case in cases:
        await run_case(case)
    # No token at all where one is required.
    client = await connect(None)
    answer = await client.login()
    found = LJM_FAILURE.search(answer)
    check(found and found.group(1) == "token required", answer)
    # A megabyte token is refused at the HTTP request, before any XMPP.
    try:
        await connect("a" * (1 << 20))
        raise AssertionError("a 1 MB token was taken")
    except websockets.InvalidStatus as refused:
        check(refused.response.status_code in (400, 413, 414, 431), f"status {refused.response.status_code}")
    except (websockets.InvalidHandshake, ConnectionError, OSError) as refused:
        print(f"1 MB token: {refused!r}")
    # The server still serves everyone else.
    await run_case(cases[0])


async def main():
    scenario = sys.argv[1]
    await {"tokens": tokens}[scenario]()
    print(f"PASS {scenario}")


if __name__ == "__main__":
    asyncio.run(main())
