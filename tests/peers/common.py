"""What every peer shares: its command line, assertions and the JSON-lines protocol.

Peers are run by the Rust tests as `python tests/peers/<peer>.py [SCENARIO] key=value...`
(the arguments after the scenario name become `ARGS`). A scenario raises on the first
unexpected answer and prints "PASS <scenario>" on success; long-running peers talk to
their test in JSON lines instead (`emit` on stdout, one object per line on stdin).
"""
import json
import sys

ARGS = dict(arg.split("=", 1) for arg in sys.argv[2:])
HOST = "127.0.0.1"
PORT = int(ARGS.get("port", "0"))
DOMAIN = ARGS.get("domain", "localhost")
TIMEOUT = 10


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def q(ns, name):
    """ElementTree's name for `name` in namespace `ns`."""
    return f"{{{ns}}}{name}"


def emit(obj):
    """One JSON line to the Rust test."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def loopback_ice():
    """Makes aiortc gather loopback candidates only (aioice skips 127.0.0.1 by default)."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
