"""A call's life as one table: its states, the events that move it, and what each move asks.

Pure: no SIP stack, no clock, no threads. A backend feeds in what happened (an INVITE
came, the caller's ACK, the other side hung up, a timer fired) as an :class:`Event`; the
:class:`CallStateMachine` moves to its next :class:`State` and returns the
:class:`Action` s to carry out, in order. Everything a backend would otherwise keep as
flags (hung up by us? ACKed yet? handler started? outcome settled?) is the state.

Every pair of state and event is in :data:`TRANSITIONS` or is a mistake: feeding one
that is not raises :class:`CallStateError`. Pairs that may happen and change nothing
(a timer firing after the call moved on, a second hang-up) are in the table with no
actions. Bridging and rooms will be new states and rows here, as transfers are.

The state is updated before the actions are returned, so an action whose execution
reports a new event at once (a SIP stack's callbacks often come from inside the call
that caused them) finds the call already in its new state.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Literal

from .errors import VoipError

__all__ = [
    "Action",
    "CallStateError",
    "CallStateMachine",
    "EndedBy",
    "Event",
    "State",
    "TRANSITIONS",
]

EndedBy = Literal["local", "remote"]
"""Who ended a call: ``"local"`` (we did: the handler, a refusal, a deadline, shutting
down) or ``"remote"`` (the other side, or its network)."""


class State(enum.Enum):
    NEW = "new"
    """Made, not yet placed nor received."""
    INCOMING = "incoming"
    """An INVITE came: being screened."""
    REFUSING = "refusing"
    """Refused (our final response sent): waiting for the stack to finish it."""
    ANSWERED = "answered"
    """200 OK sent: waiting for the caller's ACK."""
    DROPPING = "dropping"
    """Answered and never ACKed (or shutting down meanwhile): ended by us, no BYE."""
    CALLING = "calling"
    """Outgoing: INVITE sent, waiting for the answer (ringing out)."""
    CANCELLING = "cancelling"
    """Outgoing, given up before the answer (CANCEL sent)."""
    UP = "up"
    """Confirmed both ways: the handler runs."""
    TRANSFERRING = "transferring"
    """The handler asked the other side to call someone else (REFER sent): waiting for
    the outcome it reports (the final NOTIFY). A success ends the call, a failure
    leaves it up."""
    DRAINING = "draining"
    """The handler hung up: the last frames are on their way, the BYE follows."""
    HANGING_UP = "hanging up"
    """BYE sent: waiting for the other side's answer."""
    ENDED = "ended"
    """Over (the stack reported the call disconnected)."""


class Event(enum.Enum):
    INVITE_RECEIVED = "invite received"
    PLACED = "placed"
    """We are about to send an INVITE."""
    PLACE_FAILED = "place failed"
    """The INVITE could not be sent at all."""
    ADMITTED = "admitted"
    """The screens let the INVITE in: answer it."""
    HANGUP = "hangup"
    """We end the call now, whatever its state (a refusal status while screening, a
    CANCEL while calling out, a BYE once up; shutting down)."""
    HANGUP_REQUESTED = "hangup requested"
    """The handler hung up: end the call once the last frames have drained."""
    DRAINED = "drained"
    """The drain timer fired."""
    CONFIRMED = "confirmed"
    """The caller's ACK came (incoming), or the callee's 200 OK (outgoing)."""
    ACK_TIMEOUT = "ack timeout"
    """The ACK deadline passed."""
    DISCONNECTED = "disconnected"
    """The stack says the call is over (whoever ended it, with the final status)."""
    TRANSFER = "transfer"
    """The handler transfers the call: ask the other side to call the target (REFER)."""
    TRANSFERRED = "transferred"
    """The other side reports that the transfer succeeded (NOTIFY 2xx)."""
    TRANSFER_FAILED = "transfer failed"
    """The transfer failed (REFER refused, a final NOTIFY other than 2xx, or the handler
    stopped waiting for it): the call is ours again."""


class Action(enum.Enum):
    HOLD_ACK_SLOT = "hold ack slot"
    """Count the call as awaiting its ACK (the guard's one per source address)."""
    ANSWER = "answer"
    """Send 200 OK."""
    START_ACK_TIMER = "start ack timer"
    """Have ``ACK_TIMEOUT`` fed when the ACK deadline passes."""
    RELEASE_ACK_SLOT = "release ack slot"
    START_HANDLER = "start handler"
    SETTLE_ANSWERED = "settle answered"
    """Outgoing: hand the answered call to whoever placed it."""
    SETTLE_FAILED = "settle failed"
    """Outgoing: tell whoever placed it that it failed, with the final status."""
    LOG_ANSWERED = "log answered"
    LOG_FAILED = "log failed"
    """Answered and never confirmed: log the final status and reason."""
    LOG_NEVER_ACKED = "log never acked"
    LOG_ENDED = "log ended"
    """Log who hung up (:attr:`CallStateMachine.ended_by`)."""
    START_DRAIN_TIMER = "start drain timer"
    """Have ``DRAINED`` fed once the last frames played have reached the other side."""
    HANG_UP = "hang up"
    """Send the final response (with the event's status), CANCEL or BYE, as fits."""
    DROP = "drop"
    """End the call at once without a BYE (the ACK never came)."""
    REFER = "refer"
    """Send the REFER for the transfer asked (to a URI, or replacing another call)."""
    SETTLE_TRANSFER = "settle transfer"
    """Tell the handler how its transfer went, with the status (2xx: it succeeded)."""
    RELEASE = "release"
    """Stop the call's media, tell its :class:`~voip.call.Call` it ended, let go of the
    stack's objects."""


S, E, A = State, Event, Action

_Row = tuple[State, tuple[Action, ...]]

TRANSITIONS: Mapping[tuple[State, Event], _Row] = {
    # -- incoming --------------------------------------------------------------------
    (S.NEW, E.INVITE_RECEIVED): (S.INCOMING, ()),
    (S.INCOMING, E.ADMITTED): (S.ANSWERED, (A.HOLD_ACK_SLOT, A.ANSWER, A.START_ACK_TIMER)),
    (S.INCOMING, E.HANGUP): (S.REFUSING, (A.HANG_UP,)),
    (S.REFUSING, E.DISCONNECTED): (S.ENDED, (A.RELEASE,)),
    (S.REFUSING, E.HANGUP): (S.REFUSING, ()),
    (S.ANSWERED, E.CONFIRMED): (
        S.UP,
        (A.RELEASE_ACK_SLOT, A.LOG_ANSWERED, A.START_HANDLER),
    ),
    # e.g. 488 when the caller's media address is unusable: PJSIP refuses after all.
    (S.ANSWERED, E.DISCONNECTED): (S.ENDED, (A.RELEASE_ACK_SLOT, A.LOG_FAILED, A.RELEASE)),
    (S.ANSWERED, E.ACK_TIMEOUT): (S.DROPPING, (A.LOG_NEVER_ACKED, A.DROP)),
    (S.ANSWERED, E.HANGUP): (S.DROPPING, (A.DROP,)),
    (S.DROPPING, E.DISCONNECTED): (S.ENDED, (A.RELEASE_ACK_SLOT, A.RELEASE)),
    # Dropped with a BYE after all (no way to end it without one): the ACK comes first.
    (S.DROPPING, E.CONFIRMED): (S.DROPPING, ()),
    (S.DROPPING, E.HANGUP): (S.DROPPING, ()),
    (S.DROPPING, E.ACK_TIMEOUT): (S.DROPPING, ()),
    # -- outgoing --------------------------------------------------------------------
    (S.NEW, E.PLACED): (S.CALLING, ()),
    (S.CALLING, E.PLACE_FAILED): (S.ENDED, (A.SETTLE_FAILED, A.RELEASE)),
    (S.CALLING, E.CONFIRMED): (S.UP, (A.SETTLE_ANSWERED, A.LOG_ANSWERED)),
    (S.CALLING, E.DISCONNECTED): (S.ENDED, (A.SETTLE_FAILED, A.RELEASE)),
    (S.CALLING, E.HANGUP): (S.CANCELLING, (A.HANG_UP,)),
    (S.CANCELLING, E.DISCONNECTED): (S.ENDED, (A.SETTLE_FAILED, A.RELEASE)),
    # Answered as we gave up: the stack ACKs the 200 and sends the BYE itself.
    (S.CANCELLING, E.CONFIRMED): (S.CANCELLING, ()),
    (S.CANCELLING, E.HANGUP): (S.CANCELLING, ()),
    # -- up, either way --------------------------------------------------------------
    (S.UP, E.HANGUP_REQUESTED): (S.DRAINING, (A.START_DRAIN_TIMER,)),
    (S.UP, E.HANGUP): (S.HANGING_UP, (A.HANG_UP,)),
    (S.UP, E.DISCONNECTED): (S.ENDED, (A.LOG_ENDED, A.RELEASE)),
    (S.UP, E.ACK_TIMEOUT): (S.UP, ()),
    # -- transferring (REFER) --------------------------------------------------------
    (S.UP, E.TRANSFER): (S.TRANSFERRING, (A.REFER,)),
    # The transferee calls the target and says how it went; on success we hang up,
    # as RFC 5589 has the transferor do once the NOTIFY 200 comes.
    (S.TRANSFERRING, E.TRANSFERRED): (S.HANGING_UP, (A.SETTLE_TRANSFER, A.HANG_UP)),
    (S.TRANSFERRING, E.TRANSFER_FAILED): (S.UP, (A.SETTLE_TRANSFER,)),
    (S.TRANSFERRING, E.HANGUP_REQUESTED): (S.DRAINING, (A.START_DRAIN_TIMER,)),
    (S.TRANSFERRING, E.HANGUP): (S.HANGING_UP, (A.HANG_UP,)),
    (S.TRANSFERRING, E.DISCONNECTED): (S.ENDED, (A.LOG_ENDED, A.RELEASE)),
    (S.TRANSFERRING, E.ACK_TIMEOUT): (S.TRANSFERRING, ()),
    # A NOTIFY after the handler stopped waiting, or as the call ends, changes nothing.
    (S.UP, E.TRANSFERRED): (S.UP, ()),
    (S.UP, E.TRANSFER_FAILED): (S.UP, ()),
    (S.DRAINING, E.DRAINED): (S.HANGING_UP, (A.HANG_UP,)),
    (S.DRAINING, E.HANGUP): (S.HANGING_UP, (A.HANG_UP,)),
    (S.DRAINING, E.DISCONNECTED): (S.ENDED, (A.LOG_ENDED, A.RELEASE)),
    (S.DRAINING, E.HANGUP_REQUESTED): (S.DRAINING, ()),
    (S.DRAINING, E.ACK_TIMEOUT): (S.DRAINING, ()),
    (S.DRAINING, E.TRANSFERRED): (S.DRAINING, ()),
    (S.DRAINING, E.TRANSFER_FAILED): (S.DRAINING, ()),
    (S.HANGING_UP, E.DISCONNECTED): (S.ENDED, (A.LOG_ENDED, A.RELEASE)),
    (S.HANGING_UP, E.HANGUP): (S.HANGING_UP, ()),
    (S.HANGING_UP, E.HANGUP_REQUESTED): (S.HANGING_UP, ()),
    (S.HANGING_UP, E.DRAINED): (S.HANGING_UP, ()),
    (S.HANGING_UP, E.ACK_TIMEOUT): (S.HANGING_UP, ()),
    (S.HANGING_UP, E.TRANSFER): (S.HANGING_UP, ()),
    (S.HANGING_UP, E.TRANSFERRED): (S.HANGING_UP, ()),
    (S.HANGING_UP, E.TRANSFER_FAILED): (S.HANGING_UP, ()),
    # -- over: late timers and hang-ups change nothing -------------------------------
    (S.ENDED, E.HANGUP): (S.ENDED, ()),
    (S.ENDED, E.HANGUP_REQUESTED): (S.ENDED, ()),
    (S.ENDED, E.DRAINED): (S.ENDED, ()),
    (S.ENDED, E.ACK_TIMEOUT): (S.ENDED, ()),
    (S.ENDED, E.TRANSFER): (S.ENDED, ()),
    (S.ENDED, E.TRANSFERRED): (S.ENDED, ()),
    (S.ENDED, E.TRANSFER_FAILED): (S.ENDED, ()),
}
"""``(state, event) -> (next state, actions)``: the whole of a call's life."""

_ENDED_BY_US = frozenset({S.REFUSING, S.DROPPING, S.CANCELLING, S.DRAINING, S.HANGING_UP})
"""States from which the call's end is ours, whoever's message ends it."""


class CallStateError(VoipError):
    """An event that cannot happen in the call's state: a bug in the backend feeding it."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"a call cannot take the event {event.value!r} in state {state.value!r}")
        self.state = state
        self.event = event


class CallStateMachine:
    """One call's state; :meth:`handle` moves it along :data:`TRANSITIONS`."""

    def __init__(self) -> None:
        self.state = State.NEW
        self.ended_by: EndedBy | None = None
        """Who ended the call, once :attr:`state` is ``ENDED``: ``"local"`` when the
        end came while we were ending it, else ``"remote"``."""

    def handle(self, event: Event) -> tuple[Action, ...]:
        """Take ``event``: move to the next state and return what to do, in order."""
        try:
            state, actions = TRANSITIONS[self.state, event]
        except KeyError:
            raise CallStateError(self.state, event) from None
        if state is S.ENDED and self.state is not S.ENDED:
            self.ended_by = "local" if self.state in _ENDED_BY_US else "remote"
        self.state = state
        return actions
