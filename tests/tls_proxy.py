"""A TLS-terminating TCP proxy in front of the plain RabbitMQ, and a throwaway CA, for tests.

With it the client's amqps:// path (certificate and host-name verification, the
TLS handshake, AMQP over TLS) runs for real without a second, TLS-enabled broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path


def make_certificates(directory: Path, host: str = "localhost") -> Certificates:
    """A self-signed CA and a server certificate it signed for ``host`` and 127.0.0.1."""

    def openssl(*args: str) -> None:
        subprocess.run(
            ["openssl", *args],
            check=True,
            capture_output=True,
            cwd=directory,
            stdin=subprocess.DEVNULL,
        )

    openssl(
        *["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"],
        *["-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=hzz test CA"],
    )
    openssl(
        *["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key"],
        *["-out", "server.csr", "-subj", f"/CN={host}"],
    )
    (directory / "san.ext").write_text(f"subjectAltName=DNS:{host},IP:127.0.0.1\n")
    openssl(
        *["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key"],
        *["-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem"],
    )
    return Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")


class TlsProxy:
    """TLS on 127.0.0.1:<port> → plain TCP to ``target``, in a background event loop."""

    def __init__(self, certificates: Certificates, target: tuple[str, int]) -> None:
        self.target = target
        self.handshakes = 0  # TLS connections accepted
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificates.server_cert, certificates.server_key)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", 0, ssl=context), self.loop
        ).result(timeout=30)
        self.port: int = self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError, ssl.SSLError, RuntimeError):
            writer.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
