"""The cluster's own certificate authority: Dask speaks mutual TLS with it.

A Dask scheduler runs whatever a connected client sends it, so nothing may connect
without a credential: the scheduler, the workers and every client present a certificate
signed by a CA made for that one cluster, and accept only peers that do the same
(distributed checks the chain, not host names). ``make_certificates`` makes the CA and
one certificate and key per role (ECDSA P-256: small keys and cheap handshakes);
``write_certificates`` keeps them in a directory readable by its owner only (``hzz
certificates``, ``hzz cluster``, the stack's secrets); ``temporary_security`` keeps them
in memory for a cluster that lives as long as one process (``hzz run``).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from analysis.errors import InputError

#: The roles Dask's ``Security`` knows; the CA signs one certificate for each. The
#: stack's ``analysis`` service, ``hzz run`` and a notebook are clients.
ROLES = ("scheduler", "worker", "client")

#: File names in a certificates directory (one owner: the stack file, make-secrets.sh
#: and the docs name these).
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"


def cert_file(role: str) -> str:
    return f"{role}.pem"


def key_file(role: str) -> str:
    return f"{role}-key.pem"


#: How long made certificates are valid; rotate before (docs/deployment.md).
VALID_DAYS = 365


@dataclass(frozen=True)
class Certificates:
    """PEM texts: the CA's certificate and key, and each role's certificate and key."""

    ca: str
    ca_key: str
    certs: Mapping[str, str]
    keys: Mapping[str, str]


def _key_pem(key: object) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def make_certificates(name: str = "hzz", days: int = VALID_DAYS) -> Certificates:
    """A new CA named ``name`` and a certificate and key for each of ``ROLES``, signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Dask CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    certs, keys = {}, {}
    for role in ROLES:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} dask-{role}")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # Every Dask process is both: it accepts connections and opens them.
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(f"dask-{role}")]), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        certs[role] = cert.public_bytes(serialization.Encoding.PEM).decode()
        keys[role] = _key_pem(key)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    return Certificates(ca=ca_pem, ca_key=_key_pem(ca_key), certs=certs, keys=keys)


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable and writable by its owner only, from the first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as sink:
        sink.write(text)


def write_certificates(
    directory: Path, certificates: Certificates, keep_ca_key: bool = True
) -> list[Path]:
    """Write the CA and every role's files into ``directory`` (made 0700, files 0600);
    the CA's key only with ``keep_ca_key`` (needed to sign more certificates later).

    Refuses a directory that already holds any of them: replacing a CA under a running
    cluster locks its own processes out, so rotation is a deliberate new directory.
    """
    files = {CA_FILE: certificates.ca}
    if keep_ca_key:
        files[CA_KEY_FILE] = certificates.ca_key
    for role in ROLES:
        files[cert_file(role)] = certificates.certs[role]
        files[key_file(role)] = certificates.keys[role]
    present = [name for name in files if (directory / name).exists()]
    if present:
        raise InputError(
            f"{directory} already holds certificates ({', '.join(present)}); "
            "remove them or choose a new directory to make new ones"
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    written = []
    for name, text in files.items():
        _write_private(directory / name, text)
        written.append(directory / name)
    return written


def security_options(directory: Path, role: str) -> dict[str, str]:
    """``distributed.Security`` keyword arguments for ``role`` from a certificates
    directory: the CA and that role's certificate and key, encryption required."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    paths = {"ca": directory / CA_FILE, "cert": directory / cert_file(role)}
    paths["key"] = directory / key_file(role)
    for path in paths.values():
        if not path.is_file():
            raise InputError(
                f"{path}: no such certificate file (make a directory of them with "
                "hzz certificates DIR)"
            )
    return {
        "tls_ca_file": str(paths["ca"]),
        f"tls_{role}_cert": str(paths["cert"]),
        f"tls_{role}_key": str(paths["key"]),
    }


def directory_security(directory: Path, role: str = "client") -> object:
    """A ``distributed.Security`` for ``role`` from the files in ``directory``."""
    from distributed.security import Security

    return Security(require_encryption=True, **security_options(directory, role))


def temporary_security() -> object:
    """A ``distributed.Security`` for every role from a new CA held in memory only: the
    cluster of one process (``hzz run``) trusts nothing made before or elsewhere."""
    from distributed.security import Security

    made = make_certificates("hzz run")
    options: dict[str, str] = {"tls_ca_file": made.ca}
    for role in ROLES:
        options[f"tls_{role}_cert"] = made.certs[role]
        options[f"tls_{role}_key"] = made.keys[role]
    return Security(require_encryption=True, **options)
