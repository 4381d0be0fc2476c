"""TLS material for the Flower server: a per-run certificate authority, or the operator's own.

By default every run gets a fresh CA and a server certificate for the address the clients dial.
With `[server.tls]` the operator brings a CA certificate, a server certificate it signed and
that certificate's private key (PEM files); they are checked before the server starts. Either
way the CA certificate (public) travels to the clients as a hyperparameter, and private keys
never leave the server process's memory: the run folder does not keep them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orchestrator.config import ServerSettings, TlsSettings
from orchestrator.errors import BadInput


@dataclass(frozen=True)
class TlsMaterial:
    """PEM-encoded CA certificate, server certificate and server private key."""

    ca_certificate: bytes
    server_certificate: bytes
    server_key: bytes

    def for_flower(self) -> tuple[bytes, bytes, bytes]:
        """The (root certificate, server certificate, private key) tuple Flower's server takes."""
        return self.ca_certificate, self.server_certificate, self.server_key


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def generate(hosts: list[str], valid_for: dt.timedelta = dt.timedelta(days=7)) -> TlsMaterial:
    """Create a throw-away CA and a server certificate valid for `hosts` (IPs or DNS names)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedsage run CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + valid_for)
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
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + valid_for)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in dict.fromkeys(hosts)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return TlsMaterial(
        ca_certificate=ca_cert.public_bytes(serialization.Encoding.PEM),
        server_certificate=server_cert.public_bytes(serialization.Encoding.PEM),
        server_key=server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def for_server(server: ServerSettings) -> TlsMaterial:
    """The run's TLS material: the operator's `[server.tls]` files if set, else a fresh per-run CA."""
    if server.tls is not None:
        return load(server.tls, server.dial_host())
    return generate([server.dial_host()])


def _read(path, what: str, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInput(f"[server.tls] {key} = {str(path)!r}: cannot read the {what} ({exc.strerror})") from None


def load(settings: TlsSettings, host: str) -> TlsMaterial:
    """Read and check the operator's CA certificate, server certificate and key (PEM).

    Checks, so that clients pinned to the CA can connect: each file parses; the server
    certificate is signed by the CA (RFC 5280 signature check) and valid now; the private key
    belongs to it; and its subject alternative names include `host`, the address clients dial
    (RFC 6125). Raises BadInput naming the file and the fix.
    """
    ca_pem = _read(settings.ca_certificate, "CA certificate", "ca_certificate")
    cert_pem = _read(settings.certificate, "server certificate", "certificate")
    key_pem = _read(settings.private_key, "private key", "private_key")
    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise BadInput("[server.tls] ca_certificate and certificate must be PEM X.509 certificates") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise BadInput("[server.tls] private_key must be an unencrypted PEM private key") from None
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise BadInput(
            f"[server.tls] certificate {settings.certificate} is not signed by ca_certificate {settings.ca_certificate}"
        ) from None
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise BadInput(f"[server.tls] certificate {settings.certificate} is not valid now; issue a current one")
    if key.public_key().public_bytes(*_SPKI) != cert.public_key().public_bytes(*_SPKI):
        raise BadInput(f"[server.tls] private_key {settings.private_key} does not belong to {settings.certificate}")
    names = _names(cert)
    if host not in names:
        raise BadInput(
            f"[server.tls] certificate {settings.certificate} is for {', '.join(sorted(names)) or 'no names'}, "
            f"not {host!r} (advertised_address, which clients dial); add it to the subject alternative names"
        )
    return TlsMaterial(ca_certificate=ca_pem, server_certificate=cert_pem, server_key=key_pem)


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _names(cert: x509.Certificate) -> set[str]:
    """The DNS names and IP addresses a certificate's subject alternative names cover."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {*san.get_values_for_type(x509.DNSName), *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))}
