"""Sign-in scenarios against peers we did not write.

`tokens`: Jitsi token logins over RFC 7395, with the `websockets` library as the WebSocket
client: the token rides on the WebSocket URL (`?token=`) as lib-jitsi-meet sends it, SASL
is ANONYMOUS, and a refusal must have the one-line shape lib-jitsi-meet reads the reason
from. Run by `crates/xmpp/tests/tokens.rs` as
`python tests/peers/auth_scenarios.py tokens ws=<url> domain=<d> cases=<json file>`; each
case is `{"name", "token", "expect": "ok" | refusal text, "allowed": room, "denied": room,
"user": display name}`; a refusal text must match from its start (the seconds of an
expiry may have moved on).
"""
import asyncio
import json
import re
import sys

import xml.etree.ElementTree as ET

import websockets
from slixmpp.exceptions import IqError

from common import ARGS, DOMAIN, TIMEOUT, check
from xmpp_client import TrustingClient

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


FOCUS_NS = "http://jitsi.org/protocol/focus"
MUC_USER = "{http://jabber.org/protocol/muc#user}"


async def conference_request(client, room):
    """The Jitsi conference request to the focus; returns the answer or raises IqError."""
    iq = client.Iq()
    iq["type"] = "set"
    iq["to"] = f"focus.{DOMAIN}"
    iq.append(ET.fromstring(f"<conference xmlns='{FOCUS_NS}' room='{room}' machine-uid='m1'/>"))
    return await iq.send(timeout=TIMEOUT)


async def join(client, room, nick):
    """Joins the MUC room; returns the muc#user item of the self-presence."""
    own = asyncio.get_event_loop().create_future()

    def on_presence(presence):
        if str(presence["from"]) == f"{room}/{nick}" and not own.done():
            own.set_result(presence)

    client.add_event_handler("presence", on_presence)
    client.send_presence(pto=f"{room}/{nick}")
    presence = await asyncio.wait_for(own, TIMEOUT)
    check(presence["type"] != "error", f"{nick} refused: {presence}")
    return presence.xml.find(f"{MUC_USER}x/{MUC_USER}item")


async def secure():
    """A guest asks for a room no host opened: Jicofo's `not-authorized`; the host (an
    account of the main domain) opens it and moderates; the guest's retry gets in and it
    joins as a participant."""
    room = f"board@conference.{DOMAIN}"
    guest = await TrustingClient(f"guest.{DOMAIN}").start()
    try:
        await conference_request(guest, room)
        raise AssertionError("a guest opened a conference")
    except IqError as error:
        check(error.condition == "not-authorized" and error.etype == "auth", f"{error.condition}/{error.etype}")
        check(error.text == "not authorized user domain", error.text)
    print("guest: not-authorized (waiting for the host)")

    host = await TrustingClient(f"{ARGS['user']}@{DOMAIN}/web", ARGS["password"], "SCRAM-SHA-256").start()
    answer = await conference_request(host, room)
    conference = answer.xml.find(f"{{{FOCUS_NS}}}conference")
    check(conference.get("ready") == "true", ET.tostring(conference))
    properties = {p.get("name"): p.get("value") for p in conference}
    check(properties.get("authentication") == "true", properties)
    item = await join(host, room, "host")
    check(item.get("role") == "moderator" and item.get("affiliation") == "owner", ET.tostring(item))
    print("host: opened the conference, moderator")

    answer = await conference_request(guest, room)
    check(answer.xml.find(f"{{{FOCUS_NS}}}conference").get("ready") == "true", answer)
    item = await join(guest, room, "guest")
    check(item.get("role") == "participant" and item.get("affiliation") == "none", ET.tostring(item))
    print("guest: joined as participant")

    await host.stop()
    await guest.stop()


async def main():
    scenario = sys.argv[1]
    await {"tokens": tokens, "secure": secure}[scenario]()
    print(f"PASS {scenario}")


if __name__ == "__main__":
    asyncio.run(main())
