"""What a registration result means, and who tries again: a pure function of PJSIP's report.

PJSIP reports each REGISTER's outcome (status code and the expiry granted);
:func:`registration_step` says whether the registrar now holds our contact, what to log,
and who retries a failure: PJSIP retries temporary failures by itself, after
``retryIntervalSec`` (timeouts, 480, 5xx, 6xx); after any other failure (e.g. bad
credentials) it gives up, so the agent retries those, slowly. No PJSIP here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

__all__ = ["RegistrationStep", "RetryBy", "registration_step"]

RetryBy = Literal["pjsip", "ours", "none"]
"""Who tries a failed registration again: PJSIP, the agent, or nobody."""

_PJSIP_RETRIES = frozenset({408, 480, 500, 502, 503, 504})
"""Temporary failures PJSIP retries (6xx too)."""
_AUTH_REJECTED = frozenset({401, 403, 407})


@dataclass(frozen=True)
class RegistrationStep:
    """What to make of one registration report."""

    registered: bool
    """Whether the registrar holds our contact now."""
    level: int
    """The :mod:`logging` level of the line to log."""
    message: str
    """The line, a :meth:`str.format` template (see :meth:`text`)."""
    retry: RetryBy

    def text(self, *, aor: str, code: int, reason: str, expires: int, retry: int, user: str) -> str:
        """The line for the account ``aor`` (``user`` authenticating it) told ``code
        reason``, with ``expires`` seconds granted, retried every ``retry`` seconds."""
        return self.message.format(
            aor=aor, code=code, reason=reason, expires=expires, retry=retry, user=user
        )


def registration_step(
    code: int, expires: int, was_registered: bool, closing: bool
) -> RegistrationStep:
    """The meaning of PJSIP's report ``code`` with ``expires`` seconds granted, for an
    account that was registered or not, while shutting down (unregistering) or not."""
    if 200 <= code < 300:
        if expires <= 0:
            return RegistrationStep(False, logging.INFO, "unregistered {aor}", "none")
        if was_registered:
            refreshed = "registration of {aor} refreshed (expires {expires} s)"
            return RegistrationStep(True, logging.DEBUG, refreshed, "none")
        return RegistrationStep(
            True, logging.INFO, "registered as {aor} (expires {expires} s)", "none"
        )
    if closing:
        return RegistrationStep(
            False, logging.INFO, "unregistering {aor} failed: {code} {reason}", "none"
        )
    lost = "lost the registration of" if was_registered else "could not register"
    if code in _AUTH_REJECTED:
        rejected = (
            " {aor}: the registrar rejected the credentials ({code} {reason}); check"
            " --password, --auth-user ({user}) and --realm. Trying again in {retry} s"
        )
        return RegistrationStep(False, logging.ERROR, lost + rejected, "ours")
    if code in _PJSIP_RETRIES or code >= 600:
        temporary = " {aor}: {code} {reason}; retrying every {retry} s"
        return RegistrationStep(False, logging.WARNING, lost + temporary, "pjsip")
    refused = " {aor}: the registrar refused ({code} {reason}). Trying again in {retry} s"
    return RegistrationStep(False, logging.ERROR, lost + refused, "ours")
