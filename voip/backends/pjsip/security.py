"""TLS and SRTP: the checks at start-up and the settings PJSIP gets.

PJSIP takes any file name for a certificate and only fails when a connection comes;
:func:`check_security` reads the files first and names the setting at fault.
:func:`configure_tls` and :func:`configure_srtp` fill pjsua2's transport and media
configurations from the same settings.
"""

from __future__ import annotations

import ssl
from typing import Any

from ...errors import InvalidArgumentError
from .binding import pj
from .options import SipOptions

__all__ = ["check_security", "configure_tls", "configure_srtp"]


def check_security(opts: SipOptions, *, listening: bool) -> None:
    """Check the TLS and SRTP settings before PJSIP sees them.

    PJSIP takes any file name for a certificate and only fails when a connection
    comes; here a missing, unreadable or mismatched file is an error at start-up, naming
    the setting. ``listening``: for a server (a TLS listener needs a certificate), not
    for a dialler. Raises :class:`InvalidArgumentError`.
    """
    if bool(opts.tls_cert) != bool(opts.tls_key):
        given, missing = ("tls_cert", "tls_key") if opts.tls_cert else ("tls_key", "tls_cert")
        raise InvalidArgumentError(
            f"{_flag_name(given)} needs {_flag_name(missing)} too (the certificate's private key"
            " and the certificate go together)"
        )
    tls = "tls" in opts.sip_transports
    if listening and tls and not opts.tls_cert:
        raise InvalidArgumentError(
            "TLS needs a certificate: give --tls-cert FILE and --tls-key FILE"
            " (server_setup.md shows how to make a self-signed pair for testing)"
        )
    if opts.tls_verify_client and not opts.tls_ca:
        raise InvalidArgumentError(
            "--tls-verify-client needs --tls-ca, the CA certificates that signed the"
            " clients' certificates"
        )
    if opts.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        for key in ("tls_cert", "tls_key"):
            _readable(key, getattr(opts, key))
        try:
            context.load_cert_chain(opts.tls_cert, opts.tls_key, password=_no_password)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise InvalidArgumentError(
                f"cannot use --tls-cert {opts.tls_cert} with --tls-key {opts.tls_key}: {exc}"
                " (both PEM, the key unencrypted and the certificate's own)"
            ) from None
    if opts.tls_ca:
        _readable("tls_ca", opts.tls_ca)
        try:
            ssl.create_default_context(cafile=opts.tls_ca)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise InvalidArgumentError(
                f"--tls-ca {opts.tls_ca}: not a PEM file of CA certificates ({exc})"
            ) from None
    if listening and opts.srtp != "off" and not tls and not opts.srtp_without_tls:
        raise InvalidArgumentError(
            f"--srtp {opts.srtp} needs SIP over TLS to carry the keys: add --tls-cert and"
            " --tls-key, or --srtp-without-tls for a test (the keys then travel in clear)"
        )


def _flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _readable(name: str, path: str) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise InvalidArgumentError(f"{_flag_name(name)} {path}: {exc.strerror or exc}") from None


def _no_password() -> bytes:
    raise InvalidArgumentError(
        "the key is encrypted; PJSIP needs it plain: openssl pkey -in KEY -out PLAIN.pem"
    )


def configure_tls(t: Any, o: SipOptions) -> None:
    """Certificates and verification for a TLS transport (``t``: its ``tlsConfig``;
    the files were checked by :func:`check_security`)."""
    t.certFile = o.tls_cert
    t.privKeyFile = o.tls_key
    # Without --tls-ca a dialler trusts the system's CAs (as OpenSSL finds them,
    # SSL_CERT_FILE included); PJSIP loads none by itself. Not a server: PJSIP 2.15
    # stalls the handshake of every TLS connection it accepts when its CA list is
    # that long (its certificate request names them all; seen above ~60).
    system = "" if o.tls_cert else ssl.get_default_verify_paths().cafile
    t.CaListFile = o.tls_ca or system or ""
    # TLS 1.2 and 1.3 only: PJSIP's default also takes 1.0 and 1.1 (seen). The 2.15.1
    # wheel's OpenSSL (1.0.2k) has no 1.3: TLS 1.2 it is, until a newer wheel.
    t.proto = pj.PJ_SSL_SOCK_PROTO_TLS1_2 | pj.PJ_SSL_SOCK_PROTO_TLS1_3
    # With no CA list at all (a server without --tls-ca) nothing could pass.
    t.verifyServer = o.tls_verify_server and bool(t.CaListFile)
    t.verifyClient = o.tls_verify_client
    t.requireClientCert = o.tls_verify_client


def configure_srtp(media: Any, o: SipOptions) -> None:
    """SRTP with SDES keys (RFC 4568, as PBXs and desk phones do), in an account's
    ``mediaConfig``. ``mandatory`` refuses offers of plain RTP (488) and offers SRTP
    alone; ``optional`` answers either and offers SRTP as an extra. Unless
    ``srtp_without_tls``, PJSIP only puts keys in an SDP that travels over TLS (secure
    signalling level 1: this hop)."""
    media.srtpUse = {
        "off": pj.PJMEDIA_SRTP_DISABLED,
        "optional": pj.PJMEDIA_SRTP_OPTIONAL,
        "mandatory": pj.PJMEDIA_SRTP_MANDATORY,
    }[o.srtp]
    media.srtpSecureSignaling = 0 if o.srtp_without_tls else 1
    if o.srtp != "off":
        media.srtpOpt.keyings.clear()
        media.srtpOpt.keyings.append(pj.PJMEDIA_SRTP_KEYING_SDES)
