#!/usr/bin/env python3
"""An XMPP client that watches how the server ends its stream (the graceful stop).

Run by crates/convene/tests/operations.rs as
    stream_watch.py watch port=C2S_PORT domain=DOMAIN
JSON lines on stdout: {"event": "bound"} once the session is bound, then, when the server
closes the connection, {"event": "closed", "stream_error": <condition or null>,
"stream_end": <whether </stream:stream> was sent>}.
"""
import asyncio

from common import emit
from raw_stream import raw, stream_error


async def watch():
    stream = await raw("bound")
    emit({"event": "bound"})
    # No timeout of our own that matters: the Rust test bounds the whole stop.
    text = await stream.read_until_closed(timeout=60)
    emit({"event": "closed", "stream_error": stream_error(text), "stream_end": text.rstrip().endswith("</stream:stream>")})


if __name__ == "__main__":
    asyncio.run(watch())
