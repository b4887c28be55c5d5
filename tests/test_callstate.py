"""A call's life (voip.callstate): every transition, whole calls, and what holds on every path."""

from __future__ import annotations

import pytest

from voip.callstate import TRANSITIONS, Action, CallStateError, CallStateMachine, Event, State

# state, event -> next state: actions. The whole table, written out as a specification.
SPEC = """
new         invite_received  -> incoming
new         placed           -> calling
incoming    admitted         -> answered:   hold_ack_slot answer start_ack_timer
incoming    hangup           -> refusing:   hang_up
refusing    disconnected     -> ended:      release
refusing    hangup           -> refusing
answered    confirmed        -> up:         release_ack_slot log_answered start_handler
answered    disconnected     -> ended:      release_ack_slot log_failed release
answered    ack_timeout      -> dropping:   log_never_acked drop
answered    hangup           -> dropping:   drop
dropping    disconnected     -> ended:      release_ack_slot release
dropping    confirmed        -> dropping
dropping    hangup           -> dropping
dropping    ack_timeout      -> dropping
calling     place_failed     -> ended:      settle_failed release
calling     confirmed        -> up:         settle_answered log_answered
calling     disconnected     -> ended:      settle_failed release
calling     hangup           -> cancelling: hang_up
cancelling  disconnected     -> ended:      settle_failed release
cancelling  confirmed        -> cancelling
cancelling  hangup           -> cancelling
up          hangup_requested -> draining:   start_drain_timer
up          hangup           -> hanging_up: hang_up
up          disconnected     -> ended:      log_ended release
up          ack_timeout      -> up
up          transfer         -> transferring: refer
up          transferred      -> up
up          transfer_failed  -> up
transferring transferred     -> hanging_up: settle_transfer hang_up
transferring transfer_failed -> up:         settle_transfer
transferring hangup_requested -> draining:  start_drain_timer
transferring hangup          -> hanging_up: hang_up
transferring disconnected    -> ended:      log_ended release
transferring ack_timeout     -> transferring
draining    drained          -> hanging_up: hang_up
draining    hangup           -> hanging_up: hang_up
draining    disconnected     -> ended:      log_ended release
draining    hangup_requested -> draining
draining    ack_timeout      -> draining
draining    transferred      -> draining
draining    transfer_failed  -> draining
hanging_up  disconnected     -> ended:      log_ended release
hanging_up  hangup           -> hanging_up
hanging_up  hangup_requested -> hanging_up
hanging_up  drained          -> hanging_up
hanging_up  ack_timeout      -> hanging_up
hanging_up  transfer         -> hanging_up
hanging_up  transferred      -> hanging_up
hanging_up  transfer_failed  -> hanging_up
ended       hangup           -> ended
ended       hangup_requested -> ended
ended       drained          -> ended
ended       ack_timeout      -> ended
ended       transfer         -> ended
ended       transferred      -> ended
ended       transfer_failed  -> ended
"""


def parse_spec() -> list[tuple[State, Event, State, tuple[Action, ...]]]:
    rows = []
    for line in SPEC.strip().splitlines():
        left, right = line.split("->")
        state, event = left.split()
        target, _, actions = right.partition(":")
        rows.append(
            (
                State[state.upper()],
                Event[event.upper()],
                State[target.strip().upper()],
                tuple(Action[a.upper()] for a in actions.split()),
            )
        )
    return rows


ROWS = parse_spec()


def machine_in(state: State) -> CallStateMachine:
    m = CallStateMachine()
    m.state = state
    return m


@pytest.mark.parametrize(
    ("state", "event", "target", "actions"), ROWS, ids=[f"{r[0].name}-{r[1].name}" for r in ROWS]
)
def test_transition(state, event, target, actions):
    m = machine_in(state)
    assert m.handle(event) == actions
    assert m.state is target


def test_the_table_is_the_specification_and_nothing_more():
    assert {(r[0], r[1]) for r in ROWS} == set(TRANSITIONS)


IMPOSSIBLE = [(s, e) for s in State for e in Event if (s, e) not in TRANSITIONS]


@pytest.mark.parametrize(
    ("state", "event"), IMPOSSIBLE, ids=[f"{s.name}-{e.name}" for s, e in IMPOSSIBLE]
)
def test_an_impossible_event_raises_and_leaves_the_state_alone(state, event):
    m = machine_in(state)
    with pytest.raises(CallStateError) as info:
        m.handle(event)
    assert str(info.value) == (
        f"a call cannot take the event {event.value!r} in state {state.value!r}"
    )
    assert (info.value.state, info.value.event) == (state, event)
    assert m.state is state and m.ended_by is None


# Whole calls: events in turn -> who ended it: the lines logged.
CALLS = """
# Answered, then the caller hangs up.
invite_received admitted confirmed disconnected                          -> remote: answered ended
# The handler hangs up: the BYE goes once the last frames have drained.
invite_received admitted confirmed hangup_requested drained disconnected -> local: answered ended
# The caller's BYE crosses ours while the last frames drain: we hung up first.
invite_received admitted confirmed hangup_requested disconnected drained -> local: answered ended
# PJSIP cannot use the caller's media after all (488): never "answered".
invite_received admitted disconnected ack_timeout                        -> remote: failed
# Never ACKed: dropped at the deadline, without a BYE.
invite_received admitted ack_timeout disconnected                        -> local: never_acked
# Refused by the screens.
invite_received hangup disconnected                                      -> local:
# Shutting down with a call up; the handler's hang-up comes late.
invite_received admitted confirmed hangup disconnected hangup_requested  -> local: answered ended
# Outgoing: answered, then the callee hangs up.
placed confirmed disconnected                                            -> remote: answered ended
# Outgoing: busy; given up and cancelled as the callee answers; not sent at all.
placed disconnected                                                      -> remote:
placed hangup confirmed disconnected                                     -> local:
placed place_failed hangup                                               -> remote:
# Transferred: the other side reports success, we hang up; a NOTIFY after it is ignored.
placed confirmed transfer transferred transferred disconnected          -> local: answered ended
# The transfer fails (REFER refused): the call goes on until the caller hangs up.
invite_received admitted confirmed transfer transfer_failed disconnected -> remote: answered ended
# Failed, tried again, and the caller hangs up while the second one is under way.
placed confirmed transfer transfer_failed transfer disconnected          -> remote: answered ended
"""


@pytest.mark.parametrize(
    "line", [ln for ln in CALLS.strip().splitlines() if not ln.startswith("#")]
)
def test_whole_calls(line):
    left, right = line.split("->")
    ended_by, _, logged = right.partition(":")
    m = CallStateMachine()
    actions = [a for e in left.split() for a in m.handle(Event[e.upper()])]
    assert m.state is State.ENDED and m.ended_by == ended_by.strip()
    assert [a.name[4:].lower() for a in actions if a.name.startswith("LOG_")] == logged.split()
    assert actions.count(Action.RELEASE) == 1


def paths(depth: int) -> list[list[tuple[Event, tuple[Action, ...]]]]:
    """Every sequence of legal events from a new call, up to ``depth`` events long, with
    the actions each returned (a call needs at most 6 to end)."""
    found = []

    def walk(state: State, path: list[tuple[Event, tuple[Action, ...]]]) -> None:
        found.append(path)
        if len(path) == depth:
            return
        for (s, event), (target, actions) in TRANSITIONS.items():
            if s is state:
                walk(target, [*path, (event, actions)])

    walk(State.NEW, [])
    return found


ALL_PATHS = paths(8)


def test_what_holds_on_every_path():
    ended = 0
    for path in ALL_PATHS:
        m = CallStateMachine()
        actions: list[Action] = []
        after_end: list[Action] = []
        for event, _ in path:
            (after_end if m.state is State.ENDED else actions).extend(m.handle(event))
        count = actions.count
        where = [e.name for e, _ in path]
        # Each ACK slot held is released, once, and only once the call is past waiting.
        assert count(Action.RELEASE_ACK_SLOT) <= count(Action.HOLD_ACK_SLOT) <= 1, where
        # A handler starts at most once, and only on a call logged as answered.
        assert count(Action.START_HANDLER) <= count(Action.LOG_ANSWERED) <= 1, where
        # Whoever placed a call hears about it at most once.
        assert count(Action.SETTLE_ANSWERED) + count(Action.SETTLE_FAILED) <= 1, where
        # Each transfer asked is settled at most once, before the next is asked, and
        # only a call that was up is ever transferred.
        refers = [a for a in actions if a in (Action.REFER, Action.SETTLE_TRANSFER)]
        assert all(a is not b for a, b in zip(refers, refers[1:], strict=False)), where
        assert refers[:1] != [Action.SETTLE_TRANSFER], where
        assert not refers or count(Action.LOG_ANSWERED) == 1, where
        # Once over, nothing more happens, whatever comes late.
        assert after_end == [], where
        if m.state is not State.ENDED:
            continue
        ended += 1
        # Over: released once, its slot free, "ended" logged if "answered" was (or one
        # line on why it failed), whoever placed it told.
        assert count(Action.RELEASE) == 1, where
        assert count(Action.RELEASE_ACK_SLOT) == count(Action.HOLD_ACK_SLOT), where
        assert count(Action.LOG_ENDED) == count(Action.LOG_ANSWERED), where
        assert count(Action.LOG_FAILED) + count(Action.LOG_ANSWERED) <= 1, where
        if where[0] == "PLACED":
            assert count(Action.SETTLE_ANSWERED) + count(Action.SETTLE_FAILED) == 1, where
    assert ended > 100, ended


def test_every_call_under_way_can_be_disconnected_and_hung_up():
    # PJSIP may end a call at any time, and shutting down hangs up every call.
    reached = {State.NEW} | {target for target, _ in TRANSITIONS.values()}
    for state in reached - {State.NEW, State.ENDED}:
        if state is not State.INCOMING:  # screened before PJSIP runs again
            assert (state, Event.DISCONNECTED) in TRANSITIONS, state
        assert (state, Event.HANGUP) in TRANSITIONS, state
