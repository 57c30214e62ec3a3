"""A bare TCP XMPP stream, for input no well-behaved library would send and for
watching exactly how the server ends a stream."""
import asyncio
import base64
import re

from common import DOMAIN, HOST, PORT, TIMEOUT, check


def b64(text):
    return base64.b64encode(text.encode()).decode()


class RawStream:
    def __init__(self, reader, writer):
        self.reader, self.writer, self.buffer = reader, writer, ""

    async def send(self, text):
        self.writer.write(text.encode() if isinstance(text, str) else text)
        await self.writer.drain()

    async def open(self):
        await self.send(f"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>")
        await self.expect("</stream:features>")

    async def login(self, mechanism, credentials=None):
        """Opens the stream, authenticates in one SASL step and restarts the stream."""
        await self.open()
        auth = "/>" if credentials is None else f">{b64(credentials)}</auth>"
        await self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mechanism}'{auth}")
        await self.expect("<success")
        await self.open()

    async def bind(self, iq_id, resource=None):
        """Asks to bind `resource` (or one the server picks); returns the answer."""
        wanted = "" if resource is None else f"<resource>{resource}</resource>"
        await self.send(f"<iq type='set' id='{iq_id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>{wanted}</bind></iq>")
        return await self.expect("</iq>")

    async def expect(self, marker):
        while marker not in self.buffer:
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            if not data:
                raise AssertionError(f"closed before {marker!r}; got {self.buffer!r}")
            self.buffer += data.decode()
        head, _, self.buffer = self.buffer.partition(marker)
        return head + marker

    async def read_until_closed(self, timeout=TIMEOUT):
        """Everything the server sends until it closes the connection."""
        while True:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return self.buffer
            self.buffer += data.decode(errors="replace")

    async def expect_stream_error(self, condition):
        """Reads until the server closes; the stream must end with this error."""
        await self.read_until_closed()
        check(stream_error(self.buffer) == condition, f"wanted {condition}, got {self.buffer[-400:]!r}")
        check(self.buffer.rstrip().endswith("</stream:stream>"), "stream not closed")


def stream_error(text):
    """The condition of the stream error in `text`, or None."""
    found = re.search(r"<(?!text\b)([a-z-]+) xmlns=[\"']urn:ietf:params:xml:ns:xmpp-streams", text)
    return found.group(1) if found else None


async def raw(setup=None):
    reader, writer = await asyncio.open_connection(HOST, PORT)
    stream = RawStream(reader, writer)
    if setup == "open":
        await stream.open()
    elif setup == "bound":
        await stream.login("ANONYMOUS")
        await stream.bind("b")
    return stream
