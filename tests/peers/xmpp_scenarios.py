#!/usr/bin/env python3
"""XMPP peer scenarios against a running Convene server, using slixmpp (and the
`websockets` library for RFC 7395): libraries we did not write.

Run by crates/xmpp/tests/peers.rs as
    xmpp_scenarios.py SCENARIO port=C2S_PORT ws=WS_URL domain=DOMAIN [user=NAME password=PW]
Each scenario raises on the first unexpected answer; success prints "PASS <scenario>".
"""
import asyncio
import base64
import re
import ssl
import sys
import time
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError, PresenceError

from common import ARGS, DOMAIN, HOST, PORT, TIMEOUT, check
from raw_stream import raw
from xmpp_client import TrustingClient

MUC = f"conference.{DOMAIN}"

NS_MUC_USER = "{http://jabber.org/protocol/muc#user}"


class Client(TrustingClient):
    """A client with MUC, forms, disco and ping that queues what it receives."""

    def __init__(self, jid, password="", mechanism=None):
        super().__init__(jid, password, mechanism)
        for plugin in ("xep_0030", "xep_0004", "xep_0045", "xep_0199"):
            self.register_plugin(plugin)
        self.inbox = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.subjects = asyncio.Queue()
        self.add_event_handler("groupchat_subject", self.subjects.put_nowait)
        self.add_event_handler("message", self.inbox.put_nowait)
        self.add_event_handler("message_error", self.inbox.put_nowait)
        self.add_event_handler("groupchat_message", self._groupchat)
        self.add_event_handler("groupchat_presence", self.presences.put_nowait)

    def _groupchat(self, message):
        # slixmpp fires both "message" and "groupchat_message"; "message" already queued it.
        pass

    async def next_message(self, predicate=lambda m: True):
        while True:
            message = await asyncio.wait_for(self.inbox.get(), TIMEOUT)
            if predicate(message):
                return message

    async def next_presence(self, predicate):
        while True:
            presence = await asyncio.wait_for(self.presences.get(), TIMEOUT)
            if predicate(presence):
                return presence


def statuses(presence):
    return {int(s.get("code")) for s in presence.xml.iter(NS_MUC_USER + "status")}


def item(presence):
    return presence.xml.find(f"{NS_MUC_USER}x/{NS_MUC_USER}item")


# --- scenarios -------------------------------------------------------------------------


async def login():
    """Every SASL mechanism, resource binding, ping and disco#info on the domain."""
    user, password = ARGS["user"], ARGS["password"]
    for mechanism in ("ANONYMOUS", "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"):
        if mechanism == "ANONYMOUS":
            client = Client(DOMAIN)
        else:
            client = Client(f"{user}@{DOMAIN}/{mechanism.lower()}", password, mechanism)
        await client.start()
        check(client.is_component is False and client.authenticated, "not authenticated")
        check(client["feature_mechanisms"].mech.name == mechanism, f"used {client['feature_mechanisms'].mech.name}")
        check("starttls" in client.features, f"{mechanism}: STARTTLS was not negotiated")
        jid = client.boundjid
        if mechanism == "ANONYMOUS":
            check(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", jid.user), f"anonymous node {jid.user}")
            check(jid.domain == DOMAIN, jid.domain)
        else:
            check(jid.bare == f"{user}@{DOMAIN}" and jid.resource == mechanism.lower(), f"bound {jid}")
        await client["xep_0199"].ping(jid=DOMAIN, timeout=TIMEOUT)
        roster = await client.get_roster(timeout=TIMEOUT)
        check(roster["type"] == "result", "roster request refused")
        info = await client["xep_0030"].get_info(jid=DOMAIN, timeout=TIMEOUT)
        check("urn:xmpp:ping" in info["disco_info"]["features"], "disco#info lacks ping")
        try:
            await client["xep_0199"].send_ping(f"nobody@{DOMAIN}/x", timeout=TIMEOUT)
            raise AssertionError("iq to an unknown full JID was answered")
        except IqError as error:
            check(error.condition == "service-unavailable", error.condition)
        await client.stop()
        print(f"login {mechanism} as {jid}")


async def join_refused(client, room, nick, condition, password=None):
    """A join the room must refuse with the error `condition`."""
    try:
        await client["xep_0045"].join_muc_wait(room, nick, password=password, timeout=TIMEOUT)
    except PresenceError as error:
        check(error.condition == condition, f"{nick} refused with {error.condition}, not {condition}")
        return
    raise AssertionError(f"{nick} joined (password {password}); wanted {condition}")


async def muc():
    """Three clients in a room: presence, payload pass-through, messages, IQ between
    occupants, kick, affiliations, password, members-only, nick conflict, subject."""
    room = f"standup@{MUC}"
    alice = await Client(f"{ARGS['user']}@{DOMAIN}/a", ARGS["password"], "SCRAM-SHA-256").start()
    bob = await Client(DOMAIN).start()
    carol = await Client(DOMAIN).start()

    own, subject, others, history = await alice["xep_0045"].join_muc_wait(room, "alice", timeout=TIMEOUT)
    check({110, 201} <= statuses(own), f"creator statuses {statuses(own)}")
    check(item(own).get("affiliation") == "owner" and item(own).get("role") == "moderator", "creator is not owner")
    check(not history and all(p["from"] == f"{room}/alice" for p in others), "new room not empty")

    own, _, others, _ = await bob["xep_0045"].join_muc_wait(room, "bob", timeout=TIMEOUT)
    check(110 in statuses(own) and 201 not in statuses(own), f"joiner statuses {statuses(own)}")
    check(item(own).get("role") == "participant", "joiner role")
    others = [p for p in others if p["from"] != f"{room}/bob"]
    check([str(p["from"]) for p in others] == [f"{room}/alice"], "bob sees alice")
    check(item(others[0]).get("jid") == str(alice.boundjid), "real JID missing (room must be non-anonymous)")

    seen_by_alice = asyncio.ensure_future(alice.next_presence(lambda p: p["from"] == f"{room}/carol"))
    _, _, others, _ = await carol["xep_0045"].join_muc_wait(room, "carol", timeout=TIMEOUT)
    check(sorted(str(p["from"]) for p in others if p["from"] != f"{room}/carol") == [f"{room}/alice", f"{room}/bob"], "carol sees both")
    check(item(await seen_by_alice).get("jid") == str(carol.boundjid), "alice sees carol's real JID")

    # Unknown presence payload (the Jitsi clients' state) reaches everyone unchanged.
    update = bob.make_presence(pto=f"{room}/bob")
    update.xml.append(ET.fromstring('<stats-id xmlns="jabber:client">Maybelle-Kzx</stats-id>'))
    update.xml.append(ET.fromstring('<SourceInfo xmlns="jabber:client">{"a0":{"muted":false}}</SourceInfo>'))
    update.xml.append(ET.fromstring('<custom xmlns="urn:example:x" k="v"><deep><er/></deep></custom>'))
    update.send()
    for watcher in (alice, carol):
        got = await watcher.next_presence(lambda p: p["from"] == f"{room}/bob" and p.xml.find("{jabber:client}stats-id") is not None)
        check(got.xml.find("{jabber:client}SourceInfo").text == '{"a0":{"muted":false}}', "SourceInfo changed")
        custom = got.xml.find("{urn:example:x}custom")
        check(custom is not None and custom.get("k") == "v" and custom.find("{urn:example:x}deep/{urn:example:x}er") is not None, "custom payload changed")

    # Group chat and private messages.
    alice.send_message(mto=room, mbody="hello room", mtype="groupchat")
    for reader in (alice, bob, carol):
        got = await reader.next_message(lambda m: m["type"] == "groupchat" and m["body"])
        check(got["body"] == "hello room" and got["from"] == f"{room}/alice", f"groupchat {got}")
    bob.send_message(mto=f"{room}/carol", mbody="psst", mtype="chat")
    got = await carol.next_message(lambda m: m["type"] == "chat")
    check(got["body"] == "psst" and got["from"] == f"{room}/bob", f"private {got}")

    # IQ between occupants, rewritten to occupant JIDs both ways (how Jingle flows).
    await alice["xep_0199"].send_ping(f"{room}/bob", timeout=TIMEOUT)
    try:
        await alice["xep_0199"].send_ping(f"{room}/nobody", timeout=TIMEOUT)
        raise AssertionError("iq to a missing occupant was answered")
    except IqError as error:
        check(error.condition == "item-not-found", error.condition)

    # Subject: moderators only.
    alice["xep_0045"].set_subject(room, "daily")
    while (got := await asyncio.wait_for(carol.subjects.get(), TIMEOUT))["subject"] != "daily":
        pass

    # Affiliation grant by bare JID (what the focus does for the first participant).
    await alice["xep_0045"].set_affiliation(room, "owner", jid=carol.boundjid.bare, timeout=TIMEOUT)
    got = await bob.next_presence(lambda p: p["from"] == f"{room}/carol" and item(p) is not None and item(p).get("affiliation") == "owner")
    check(item(got).get("role") == "moderator", "owner is moderator")

    # Presence going away.
    carol["xep_0045"].leave_muc(room, "carol")
    got = await bob.next_presence(lambda p: p["from"] == f"{room}/carol")
    check(got["type"] == "unavailable" and item(got).get("role") == "none", "carol left")

    # Kick.
    await alice["xep_0045"].set_role(room, "bob", "none", reason="bye", timeout=TIMEOUT)
    got = await bob.next_presence(lambda p: p["from"] == f"{room}/bob" and p["type"] == "unavailable")
    check({307, 110} <= statuses(got), f"kick statuses {statuses(got)}")
    check(item(got).find(NS_MUC_USER + "reason").text == "bye", "kick reason")

    # Nickname conflict.
    await join_refused(bob, room, "alice", "conflict")

    # Password-protected room.
    form = alice["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", value="http://jabber.org/protocol/muc#roomconfig")
    form.add_field(var="muc#roomconfig_roomsecret", value="s3cret")
    form.add_field(var="muc#roomconfig_passwordprotectedroom", value="1")
    await alice["xep_0045"].set_room_config(room, form, timeout=TIMEOUT)
    info = await bob["xep_0030"].get_info(jid=room, timeout=TIMEOUT)
    check("muc_passwordprotected" in info["disco_info"]["features"], "room not marked password protected")
    for password in (None, "wrong"):
        await join_refused(bob, room, "bob", "not-authorized", password)
    await bob["xep_0045"].join_muc_wait(room, "bob", password="s3cret", timeout=TIMEOUT)

    # Members-only room.
    form = alice["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", value="http://jabber.org/protocol/muc#roomconfig")
    form.add_field(var="muc#roomconfig_membersonly", value="1")
    await alice["xep_0045"].set_room_config(room, form, timeout=TIMEOUT)
    dave = await Client(DOMAIN).start()
    await join_refused(dave, room, "dave", "registration-required", "s3cret")

    # Everyone leaves: the room is destroyed (the Rust side checks the room count).
    bob["xep_0045"].leave_muc(room, "bob")
    alice["xep_0045"].leave_muc(room, "alice")
    await alice.next_presence(lambda p: p["from"] == f"{room}/alice" and p["type"] == "unavailable")
    for client in (alice, bob, carol, dave):
        await client.stop()


async def refused(coroutine, condition, what):
    """Awaits an IQ that must be refused with `condition`."""
    try:
        await coroutine
    except IqError as error:
        check(error.condition == condition, f"{what}: {error.condition}, wanted {condition}")
        return
    raise AssertionError(f"{what} was allowed")


async def muc_forged():
    """A participant without the right forges each moderator action: the error the clients
    handle, and nothing changes for anyone. Then the room owner does the same: it works."""
    room = f"forged@{MUC}"
    alice = await Client(f"{ARGS['user']}@{DOMAIN}/a", ARGS["password"], "SCRAM-SHA-256").start()
    bob, carol = await Client(DOMAIN).start(), await Client(DOMAIN).start()
    await alice["xep_0045"].join_muc_wait(room, "alice", timeout=TIMEOUT)
    await bob["xep_0045"].join_muc_wait(room, "bob", timeout=TIMEOUT)
    await carol["xep_0045"].join_muc_wait(room, "carol", timeout=TIMEOUT)
    muc = bob["xep_0045"]

    await refused(muc.set_role(room, "alice", "none", reason="x", timeout=TIMEOUT), "not-allowed", "kick by a participant")
    await refused(muc.set_role(room, "carol", "moderator", timeout=TIMEOUT), "not-allowed", "moderator role by a participant")
    await refused(muc.set_affiliation(room, "owner", jid=bob.boundjid.bare, timeout=TIMEOUT), "forbidden", "owner grant to oneself")
    await refused(muc.set_affiliation(room, "outcast", jid=alice.boundjid.bare, timeout=TIMEOUT), "forbidden", "ban of the owner")
    form = bob["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", value="http://jabber.org/protocol/muc#roomconfig")
    form.add_field(var="muc#roomconfig_roomsecret", value="mine")
    form.add_field(var="muc#roomconfig_passwordprotectedroom", value="1")
    await refused(muc.set_room_config(room, form, timeout=TIMEOUT), "forbidden", "locking the room")
    await refused(muc.get_room_config(room, timeout=TIMEOUT), "forbidden", "reading the room's form")
    subject = bob.make_message(mto=room, mtype="groupchat")
    subject["subject"] = "mine"
    subject.send()
    got = await bob.next_message(lambda m: m["type"] == "error")
    check(got["error"]["condition"] == "forbidden", f"subject: {got['error']['condition']}")

    # Nothing changed: nobody left or changed role, the room is open, a newcomer walks in.
    info = await carol["xep_0030"].get_info(jid=room, timeout=TIMEOUT)
    check("muc_unsecured" in info["disco_info"]["features"], "room locked by a forged form")
    roles = {p["from"].resource: item(p).get("role") for p in await drain(carol.presences)}
    check(roles == {"alice": "moderator", "bob": "participant", "carol": "participant"}, f"roles changed: {roles}")
    dave = await Client(DOMAIN).start()
    await dave["xep_0045"].join_muc_wait(room, "dave", timeout=TIMEOUT)

    # The owner may: lock the room, grant moderator, kick.
    form = alice["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", value="http://jabber.org/protocol/muc#roomconfig")
    form.add_field(var="muc#roomconfig_roomsecret", value="s3cret")
    form.add_field(var="muc#roomconfig_passwordprotectedroom", value="1")
    await alice["xep_0045"].set_room_config(room, form, timeout=TIMEOUT)
    eve = await Client(DOMAIN).start()
    await join_refused(eve, room, "eve", "not-authorized")
    await alice["xep_0045"].set_affiliation(room, "owner", jid=carol.boundjid.bare, timeout=TIMEOUT)
    got = await bob.next_presence(lambda p: p["from"] == f"{room}/carol" and item(p).get("role") == "moderator")
    check(item(got).get("affiliation") == "owner", "carol not owner")
    await carol["xep_0045"].set_role(room, "bob", "none", reason="bye", timeout=TIMEOUT)
    got = await bob.next_presence(lambda p: p["from"] == f"{room}/bob" and p["type"] == "unavailable")
    check({307, 110} <= statuses(got), f"kick statuses {statuses(got)}")
    for client in (alice, bob, carol, dave, eve):
        await client.stop()


async def drain(queue):
    """What `queue` holds now."""
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def second_resource():
    """Two resources of one account both work; binding a taken resource is a conflict."""
    user, password = ARGS["user"], ARGS["password"]
    one = await Client(f"{user}@{DOMAIN}/one", password, "SCRAM-SHA-1").start()
    two = await Client(f"{user}@{DOMAIN}/two", password, "SCRAM-SHA-1").start()
    other = await Client(DOMAIN).start()
    one.send_message(mto=f"{user}@{DOMAIN}/two", mbody="to two")
    check((await two.next_message())["body"] == "to two", "full JID delivery")
    other.send_message(mto=f"{user}@{DOMAIN}", mbody="to all", mtype="chat")
    for resource in (one, two):
        got = await resource.next_message()
        check(got["body"] == "to all" and got["from"] == other.boundjid, "bare JID delivery")
    # A third stream asking for the resource "one" gets <conflict/> on bind.
    plain = chr(0) + user + chr(0) + password
    stream = await raw()
    await stream.login("PLAIN", plain)
    answer = await stream.bind("b", "one")
    check("type='error'" in answer.replace('"', "'") and "<conflict" in answer, answer)
    # A session detached with stream management gives its resource to a new login
    # that does not resume it; a live one keeps it (above).
    await stream.bind("b2", "three")
    await stream.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
    await stream.expect("<enabled")
    stream.writer.transport.abort()
    await asyncio.sleep(0.2)
    stream = await raw()
    await stream.login("PLAIN", plain)
    answer = await stream.bind("b3", "three")
    check(f"{user}@{DOMAIN}/three" in answer, answer)
    stream.writer.close()
    await one["xep_0199"].ping(jid=DOMAIN, timeout=TIMEOUT)
    for client in (one, two, other):
        await client.stop()


async def wrong_password():
    """A wrong password is answered <not-authorized/>; the next try waits 200 ms after it."""
    failed_at = None
    for attempt in range(2):
        client = Client(f"{ARGS['user']}@{DOMAIN}/x", "not-the-password", "SCRAM-SHA-256")
        client.connect(HOST, PORT)
        failure = await asyncio.wait_for(client.failed, TIMEOUT)
        check(failure.xml.find("{urn:ietf:params:xml:ns:xmpp-sasl}not-authorized") is not None, str(failure))
        if attempt == 1:
            elapsed = time.monotonic() - failed_at
            check(elapsed >= 0.2, f"second failure not throttled ({elapsed:.3f}s after the first)")
        failed_at = time.monotonic()
        client.disconnect()
    right = await Client(f"{ARGS['user']}@{DOMAIN}/y", ARGS["password"], "SCRAM-SHA-256").start()
    await right.stop()


async def sasl_failure(jid, password):
    """The SASL failure condition a PLAIN login gets, and how long it took."""
    client = Client(jid, password, "PLAIN")
    began = time.monotonic()
    client.connect(HOST, PORT)
    failure = await asyncio.wait_for(client.failed, TIMEOUT)
    client.disconnect()
    condition = next(iter(failure.xml), None)
    return (condition.tag.split("}")[1] if condition is not None else None), time.monotonic() - began


async def directory():
    """PLAIN checked against the LDAP directory (args user/password: a member of the
    moderator group; other/other_password: a plain member; local/local_password: a local
    account). The group, not the order of joining, decides who owns the room."""
    room = f"ldap@{MUC}"
    # The local account creates the room (its creator owns it, as the focus does in Jitsi).
    local = await Client(f"{ARGS['local']}@{DOMAIN}/l", ARGS["local_password"], "PLAIN").start()
    check(local.boundjid.bare == f"{ARGS['local']}@{DOMAIN}", "local account beside the directory")
    await local["xep_0045"].join_muc_wait(room, "local", timeout=TIMEOUT)
    other = await Client(f"{ARGS['other']}@{DOMAIN}/o", ARGS["other_password"], "PLAIN").start()
    check(other["feature_mechanisms"].mech.name == "PLAIN", "not PLAIN")
    check(other.boundjid.bare == f"{ARGS['other']}@{DOMAIN}", f"bound {other.boundjid}")
    own, _, _, _ = await other["xep_0045"].join_muc_wait(room, "other", timeout=TIMEOUT)
    check(item(own).get("affiliation") != "owner", f"plain member got {item(own).get('affiliation')}")
    moderator = await Client(f"{ARGS['user']}@{DOMAIN}/m", ARGS["password"], "PLAIN").start()
    own, _, _, _ = await moderator["xep_0045"].join_muc_wait(room, "moderator", timeout=TIMEOUT)
    check(item(own).get("affiliation") == "owner", f"moderator group member got {item(own).get('affiliation')}")
    for client in (other, moderator, local):
        await client.stop()
    condition, _ = await sasl_failure(f"{ARGS['user']}@{DOMAIN}/w", "not-the-password")
    check(condition == "not-authorized", f"wrong password answered {condition}")


async def directory_down():
    """The directory is stopped: the right password gets <temporary-auth-failure/> soon."""
    condition, elapsed = await sasl_failure(f"{ARGS['user']}@{DOMAIN}/d", ARGS["password"])
    check(condition == "temporary-auth-failure", f"directory down answered {condition}")
    check(elapsed < 5, f"the answer took {elapsed:.1f} s")
    print(f"directory down answered in {elapsed:.2f} s")


# --- raw streams for hostile input -----------------------------------------------------


async def bad_input():
    bystander = await Client(DOMAIN).start()

    stream = await raw("open")
    await stream.send("<message><body>unclosed</message>")
    await stream.expect_stream_error("not-well-formed")
    print("malformed XML -> not-well-formed")

    stream = await raw()
    await stream.send("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]>"
                      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='x'>&lol2;")
    await stream.expect_stream_error("not-well-formed")
    print("entity bomb -> not-well-formed")

    stream = await raw("bound")
    await stream.send("<message to='a@b'><body>" + "x" * (70 * 1024) + "</body></message>")
    await stream.expect_stream_error("policy-violation")
    print("oversized stanza -> policy-violation")

    stream = await raw("bound")
    await stream.send("<message>" + "<a>" * 100 + "</a>" * 100 + "</message>")
    await stream.expect_stream_error("policy-violation")
    print("deep nesting -> policy-violation")

    stream = await raw("bound")
    await stream.send("".join(f"<iq type='get' id='f{i}'><ping xmlns='urn:xmpp:ping'/></iq>" for i in range(1000)))
    await stream.expect_stream_error("policy-violation")
    print("flood -> policy-violation")

    stream = await raw("open")
    await stream.send("<message to='x@y'><body>before auth</body></message>")
    await stream.expect_stream_error("not-authorized")
    print("stanza before auth -> not-authorized")

    # The well-behaved client on the same server noticed nothing.
    await bystander["xep_0199"].ping(jid=DOMAIN, timeout=TIMEOUT)

    # Unauthenticated connections per address (the test server allows 8).
    held = []
    for index in range(8):
        try:
            held.append(await raw("open"))
        except AssertionError as error:
            raise AssertionError(f"unauthenticated connection {index} refused") from error
    extra = await raw()
    await extra.send(f"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>")
    await extra.expect_stream_error("policy-violation")
    print("too many unauthenticated connections -> policy-violation")
    for stream in held:
        stream.writer.close()
    await bystander.stop()


async def pipelined():
    """A client that does not wait for the server's answers: `<starttls/>` and its TLS
    ClientHello (from Python's ssl, OpenSSL) in one write, then, under TLS, SASL PLAIN and
    the restarted stream's header in one write. Each must go to the right reader: the
    ClientHello to TLS, not to the XML parser ("invalid codepoint U+16"), the new header
    to the new stream's parser."""
    reader, writer = await asyncio.open_connection(HOST, PORT)
    received = b""

    async def until(marker, read):
        nonlocal received
        while marker not in received:
            data = await asyncio.wait_for(read(), TIMEOUT)
            check(data, f"closed before {marker!r}; got {received!r}")
            received += data
        head, _, received = received.partition(marker)
        return head + marker

    socket_read = lambda: reader.read(65536)
    opening = f"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
    writer.write(opening.encode())
    check(b"starttls" in await until(b"</stream:features>", socket_read), "no STARTTLS offered")

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=DOMAIN)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    check(hello[:1] == b"\x16", "no ClientHello")
    writer.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" + hello)
    await until(b"<proceed", socket_read)
    await until(b"/>", socket_read)
    # What follows `<proceed/>` is the server's TLS.
    incoming.write(received)
    received = b""
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            writer.write(outgoing.read())
            data = await asyncio.wait_for(socket_read(), TIMEOUT)
            check(data, "closed during the TLS handshake")
            incoming.write(data)
    writer.write(outgoing.read())
    print("<starttls/> and ClientHello in one write -> TLS")

    def send(text):
        tls.write(text.encode())
        writer.write(outgoing.read())

    async def tls_read():
        while True:
            try:
                return tls.read(65536)
            except ssl.SSLWantReadError:
                data = await socket_read()
                if not data:
                    return b""
                incoming.write(data)

    send(opening)
    check(b"PLAIN" in await until(b"</stream:features>", tls_read), "no PLAIN under TLS")
    plain = base64.b64encode(f"\0{ARGS['user']}\0{ARGS['password']}".encode()).decode()
    send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>" + opening)
    await until(b"<success", tls_read)
    check(b"urn:ietf:params:xml:ns:xmpp-bind" in await until(b"</stream:features>", tls_read), "no bind offered")
    send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    bound = await until(b"</iq>", tls_read)
    check(f"<jid>{ARGS['user']}@{DOMAIN}/".encode() in bound, f"not bound: {bound!r}")
    print("SASL and the new stream header in one write -> bound")
    writer.close()


# --- stream management over WebSocket --------------------------------------------------


async def resume():
    """XEP-0198 resumption over RFC 7395: stanzas sent while the socket was gone arrive
    once on the new socket, including one that was sent but never acknowledged."""
    import websockets

    url = ARGS["ws"]

    async def ws_login(previd=None, h=0):
        ws = await websockets.connect(url, subprotocols=["xmpp"])
        check(ws.subprotocol == "xmpp", "subprotocol not echoed")
        frames = []

        async def recv(marker):
            while True:
                frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
                frames.append(frame)
                if marker in frame:
                    return frame

        await ws.send(f"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{DOMAIN}' version='1.0'/>")
        opened = await recv("<open")
        check(re.search(r"xmlns=[\"']urn:ietf:params:xml:ns:xmpp-framing", opened) and re.search(r"version=[\"']1.0", opened), opened)
        features = await recv("features")
        check("ANONYMOUS" in features, features)
        await ws.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>")
        await recv("<success")
        await ws.send(f"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{DOMAIN}' version='1.0'/>")
        features = await recv("features")
        check("urn:xmpp:sm:3" in features and "<optional" in features, features)
        if previd:
            await ws.send(f"<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='{h}'/>")
            resumed = await recv("resumed")
            frames.clear()
            return ws, recv, resumed, frames
        await ws.send("<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        bound = await recv("</iq>")
        jid = re.search(r"<jid>([^<]+)</jid>", bound).group(1)
        check(re.fullmatch(r"[0-9a-f]{8}", jid[:8]), jid)
        await ws.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        enabled = await recv("enabled")
        smid = re.search(r"id=[\"']([^\"']+)", enabled).group(1)
        return ws, recv, jid, smid

    # Oversized frames get a stream error over WebSocket too.
    for size in (70 * 1024, 1024 * 1024):
        bad = await websockets.connect(url, subprotocols=["xmpp"], max_size=None)
        await bad.send(f"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{DOMAIN}' version='1.0'/>")
        await bad.send("<message xmlns='jabber:client'><body>" + "x" * size + "</body></message>")
        frames = []
        try:
            while True:
                frames.append(await asyncio.wait_for(bad.recv(), TIMEOUT))
        except websockets.ConnectionClosed:
            pass
        check(any("policy-violation" in f for f in frames) and "close" in frames[-1], f"{size}: {frames[-2:]}")

    ws, recv, jid, smid = await ws_login()
    # Join a room: occupancy must survive the cut.
    room = f"resumption@{MUC}"
    await ws.send(f"<presence xmlns='jabber:client' to='{room}/{jid[:8]}'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    await recv("</message>")  # the subject closes the join

    sender = await Client(DOMAIN).start()
    sender.send_message(mto=jid, mbody="m1", mtype="chat")
    await recv(">m1<")
    # Acknowledge everything so far: the two presence/subject stanzas and m1.
    await ws.send("<a xmlns='urn:xmpp:sm:3' h='3'/>")
    sender.send_message(mto=jid, mbody="m2", mtype="chat")
    await recv(">m2<")  # received but never acknowledged
    ws.transport.abort()  # cut: no WebSocket close, no XMPP <close/>
    await asyncio.sleep(0.3)

    watcher = await Client(DOMAIN).start()
    _, _, others, _ = await watcher["xep_0045"].join_muc_wait(room, "watcher", timeout=TIMEOUT)
    others = [str(p["from"]) for p in others if p["from"] != f"{room}/watcher"]
    check(others == [f"{room}/{jid[:8]}"], f"detached session left the room: {others}")
    for body in ("m3", "m4"):
        sender.send_message(mto=jid, mbody=body, mtype="chat")
    await asyncio.sleep(0.3)

    ws, recv, resumed, frames = await ws_login(previd=smid, h=3)
    check(smid in resumed, resumed)
    bodies = []
    while len(bodies) < 3:
        frame = await recv("<")
        bodies += re.findall(r"<body>(m\d)</body>", frame)
    check(bodies == ["m2", "m3", "m4"], f"after resumption got {bodies}")
    # Nothing more, nothing twice.
    sender.send_message(mto=jid, mbody="m5", mtype="chat")
    frame = await recv(">m5<")
    check(not re.findall(r"<body>(m[1-4])</body>", frame), frame)

    # The client reconnects before the server noticed that the old socket died: the new
    # connection takes the session over and the old one gets <conflict/>.
    await asyncio.sleep(0.2)
    h = 3 + sum(1 for f in frames if re.match(r"<(message|presence|iq)[\s>]", f))
    old = ws
    ws, recv, resumed, frames = await ws_login(previd=smid, h=h)
    check(smid in resumed, resumed)
    goodbye = []
    while not goodbye or "<close" not in goodbye[-1]:
        goodbye.append(await asyncio.wait_for(old.recv(), TIMEOUT))
    check("<conflict" in goodbye[-2], f"old connection got {goodbye}")
    sender.send_message(mto=jid, mbody="m6", mtype="chat")
    frame = await recv("<message")
    check(re.findall(r"<body>(m\d)</body>", frame) == ["m6"], f"after takeover got {frame}")
    await ws.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
    await recv("close")
    await watcher.stop()
    await sender.stop()


async def resume_tcp():
    """XEP-0198 resumption done by slixmpp's own stream management over TCP/STARTTLS."""
    receiver = Client(DOMAIN)
    receiver.register_plugin("xep_0198")
    enabled = asyncio.ensure_future(receiver.wait_until("sm_enabled", TIMEOUT))
    await receiver.start()
    await enabled
    sender = await Client(DOMAIN).start()
    jid = receiver.boundjid
    sender.send_message(mto=jid, mbody="t1", mtype="chat")
    check((await receiver.next_message())["body"] == "t1", "before the cut")

    receiver.transport.abort()  # cut: no </stream:stream>
    await receiver.wait_until("disconnected", TIMEOUT)
    await asyncio.sleep(0.2)
    for body in ("t2", "t3"):
        sender.send_message(mto=jid, mbody=body, mtype="chat")
    await asyncio.sleep(0.2)

    resumed = asyncio.ensure_future(receiver.wait_until("session_resumed", TIMEOUT))
    receiver.connect(HOST, PORT)
    await resumed
    check(receiver.boundjid == jid, f"resumed as {receiver.boundjid}")
    got = [(await receiver.next_message())["body"] for _ in range(2)]
    check(got == ["t2", "t3"], f"after resumption got {got}")
    sender.send_message(mto=jid, mbody="t4", mtype="chat")
    check((await receiver.next_message())["body"] == "t4", "nothing twice")
    await receiver.stop()
    await sender.stop()


async def main():
    scenario = sys.argv[1]
    await {"login": login, "muc": muc, "second-resource": second_resource,
           "wrong-password": wrong_password, "bad-input": bad_input, "resume": resume,
           "resume-tcp": resume_tcp, "pipelined": pipelined, "directory": directory,
           "directory-down": directory_down, "muc-forged": muc_forged}[scenario]()
    print(f"PASS {scenario}")


if __name__ == "__main__":
    asyncio.run(main())
