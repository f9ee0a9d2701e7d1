"""A read-only git remote over HTTPS on 127.0.0.1 (git's "dumb" HTTP protocol, static files).

The bot lets `ilab` clone only over https (GIT_ALLOW_PROTOCOL=https), so a knowledge
document repository made in a test is served this way, with a self-signed certificate for
127.0.0.1 (the client is told to trust it with `GIT_SSL_CAINFO`).
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import ssl
import subprocess
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testkit.background_http import BackgroundServer


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Tests do not need the access log."""


class HttpsGit(BackgroundServer):
    """Serves the bare repositories in `root` at `https://127.0.0.1:<port>/<name>.git`."""

    def __init__(self, root: Path, certs: Path) -> None:
        for bare in root.glob("*.git"):
            subprocess.run(["git", "-C", str(bare), "update-server-info"], check=True)
        self.cert, key = self_signed(certs)
        handler = functools.partial(_Quiet, directory=str(root))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        super().__init__(server)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"
