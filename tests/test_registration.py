"""What each registration report means (voip.backends.pjsip.registration): a table of cases."""

from __future__ import annotations

import logging

import pytest

from voip.backends.pjsip.registration import registration_step

INFO, DEBUG, WARNING, ERROR = logging.INFO, logging.DEBUG, logging.WARNING, logging.ERROR
NEW, LOST = "could not register sip:a@b", "lost the registration of sip:a@b"
BAD_CREDENTIALS = (
    ": the registrar rejected the credentials ({} No); check --password, --auth-user (alice)"
    " and --realm. Trying again in 60 s"
)
REFUSED = ": the registrar refused ({} No). Trying again in 60 s"
TEMPORARY = ": {} No; retrying every 60 s"

# code, expires granted, was registered, closing -> registered now, level, who retries, line
CASES = [
    # Accepted; an expiry of 0 is the registrar's answer to our unregistering.
    (200, 300, False, False, True, INFO, "none", "registered as sip:a@b (expires 300 s)"),
    (202, 60, False, True, True, INFO, "none", "registered as sip:a@b (expires 60 s)"),
    (200, 90, True, False, True, DEBUG, "none", "registration of sip:a@b refreshed (expires 90 s)"),
    (200, 0, True, True, False, INFO, "none", "unregistered sip:a@b"),
    (200, 0, True, False, False, INFO, "none", "unregistered sip:a@b"),
    # Unregistering at shutdown failed: nobody tries again.
    (408, 0, True, True, False, INFO, "none", "unregistering sip:a@b failed: 408 No"),
    (401, 0, False, True, False, INFO, "none", "unregistering sip:a@b failed: 401 No"),
    # Credentials rejected: PJSIP gives up, we try again, slowly.
    (401, 0, False, False, False, ERROR, "ours", NEW + BAD_CREDENTIALS.format(401)),
    (403, 0, True, False, False, ERROR, "ours", LOST + BAD_CREDENTIALS.format(403)),
    (407, 0, False, False, False, ERROR, "ours", NEW + BAD_CREDENTIALS.format(407)),
    # Temporary failures (6xx too): PJSIP tries again by itself.
    *(
        (code, 0, False, False, False, WARNING, "pjsip", NEW + TEMPORARY.format(code))
        for code in (408, 480, 500, 502, 503, 504, 600, 603, 699)
    ),
    (503, 0, True, False, False, WARNING, "pjsip", LOST + TEMPORARY.format(503)),
    # Anything else: PJSIP gives up, we try again, slowly.
    *(
        (code, 0, False, False, False, ERROR, "ours", NEW + REFUSED.format(code))
        for code in (0, 404, 420, 423, 488, 501, 505)
    ),
    (404, 0, True, False, False, ERROR, "ours", LOST + REFUSED.format(404)),
]


@pytest.mark.parametrize(
    ("code", "expires", "was", "closing", "registered", "level", "retry", "line"), CASES
)
def test_registration_step(code, expires, was, closing, registered, level, retry, line):
    step = registration_step(code, expires, was, closing)
    assert (step.registered, step.level, step.retry) == (registered, level, retry)
    text = step.text(aor="sip:a@b", code=code, reason="No", expires=expires, retry=60, user="alice")
    assert text == line


def test_the_reason_is_logged_as_it_came():
    step = registration_step(403, 0, False, False)
    text = step.text(aor="sip:a@b", code=403, reason="{user} {}", expires=0, retry=5, user="bob")
    assert "(403 {user} {}); check --password, --auth-user (bob)" in text
