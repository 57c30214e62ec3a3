"""The slixmpp client every XMPP peer starts from."""
import asyncio
import ssl

import slixmpp

from common import HOST, PORT, TIMEOUT, check


class TrustingClient(slixmpp.ClientXMPP):
    """A slixmpp client that trusts the server's self-signed certificate and can be told
    which SASL mechanism to use (ANONYMOUS when `jid` is just the domain)."""

    def __init__(self, jid, password="", mechanism=None):
        super().__init__(jid, password)
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        if mechanism:
            self["feature_mechanisms"].use_mech = mechanism
        self.failed = asyncio.get_event_loop().create_future()
        self.add_event_handler("failed_auth", self._failed)

    def _failed(self, stanza):
        if not self.failed.done():
            self.failed.set_result(stanza)

    async def start(self):
        """Connects and waits for the session; raises if authentication fails."""
        self.connect(HOST, PORT)
        done, _ = await asyncio.wait(
            [asyncio.ensure_future(self.wait_until("session_start", TIMEOUT)), self.failed],
            timeout=TIMEOUT,
            return_when=asyncio.FIRST_COMPLETED,
        )
        check(self.failed not in done, f"{self.boundjid}: authentication failed")
        check(done, f"{self.boundjid}: no session")
        return self

    async def stop(self):
        self.disconnect()
        await self.wait_until("disconnected", TIMEOUT)
