"""Rooms and queues across workers, the pure parts: a room's home, a leg's recognition,
a room's members, legs and capacity as a worker sees them (the test kit, virtual time),
and the queues' shared line. Over SIP with real workers: test_places_sip.py."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from types import SimpleNamespace

import pytest

from voip import Queue, Room, RoomFullError
from voip.cluster.book import BOOK, Headcounts, QueueBook
from voip.cluster.places import ROOM_HEADER, TAKE_HEADER, WorkerPlaces, home_of
from voip.cluster.shares import plan_cluster
from voip.queues import SHARED_ORDER
from voip.rooms import LEAVE_BEEP, MAX_MEMBERS, SIBLINGS
from voip.testing import app

from .helpers import goertzel_power, tone

pytestmark = pytest.mark.timeout(60)


def test_a_rooms_home_is_the_same_everywhere_and_names_spread_over_the_workers():
    # CRC-32, not Python's salted hash: these hold in every process and every run.
    assert [home_of(name, 3) for name in ("1", "2", "lobby", "sales")] == [
        home_of(name, 3) for name in ("1", "2", "lobby", "sales")
    ]
    assert home_of("1", 3) == 1 + 0x83DCEFB7 % 3 == 3  # test_places_sip.py counts on it
    assert {home_of("anything", 1)} == {1}
    counts = Counter(home_of(str(n), 3) for n in range(300))
    assert set(counts) == {1, 2, 3} and min(counts.values()) > 70, counts


def leg_call(source: str, **headers: str) -> SimpleNamespace:
    return SimpleNamespace(headers=headers, info=SimpleNamespace(source=source))


def test_a_leg_is_a_siblings_call_naming_a_room_or_a_ticket_and_nothing_else():
    place = plan_cluster(3, "127.0.0.1", 5070, (4000, 4999), 4).workers[0]
    places = WorkerPlaces(place, agent=None)  # type: ignore[arg-type]
    room = {ROOM_HEADER: "lobby"}

    def serves(call: SimpleNamespace) -> tuple[str, ...] | None:
        handler = places.leg_handler(call)  # type: ignore[arg-type]
        return None if handler is None else (handler.func.__name__, *handler.args)

    assert serves(leg_call("127.0.0.1:6072", **room)) == ("serve_leg", "lobby")
    assert serves(leg_call("127.0.0.1:6073", **room)) == ("serve_leg", "lobby")
    take = {TAKE_HEADER: "sales desk 42"}
    assert serves(leg_call("127.0.0.1:6073", **take)) == ("_serve_take", "sales desk", 42)
    not_legs = [
        leg_call("127.0.0.1:6070", **room),  # kamailio's port: a caller's header
        leg_call("127.0.0.1:6071", **room),  # its own port
        leg_call("10.0.0.1:6072", **room),
        leg_call("127.0.0.1:6072"),  # a sibling's call without the header
        leg_call("127.0.0.1:6072", **{TAKE_HEADER: "sales"}),  # no ticket
    ]
    assert [serves(c) for c in not_legs] == [None] * 5
    assert places.home_port("lobby") == place.siblings[home_of("lobby", 3) - 1]
    # An agent's leg for a caller not waiting here is refused before it is answered.
    assert places.vet(take, "127.0.0.1:6073")[0] == 410
    assert places.vet(take, "127.0.0.1:6070") == (0, "")  # not a leg: the app's to answer
    assert places.vet(room, "127.0.0.1:6073") == (0, "")


class Told:
    """A worker's siblings as rooms see them: what they were told."""

    def __init__(self) -> None:
        self.said: list[tuple[str, int]] = []

    def joined(self, room: Room) -> None:
        self.said.append(("joined", len(room)))

    def left(self, room: Room) -> None:
        self.said.append(("left", len(room)))

    def size(self, room: Room) -> int:
        return len(room) + 10  # ten more on the other workers


async def test_a_room_over_workers_has_no_capacity_of_its_own_and_its_legs_are_no_members():
    told = Told()
    room = Room("big", gate=False)
    assert room.capacity == MAX_MEMBERS  # a lone process
    heard: dict[str, object] = {}

    async def handler(call):
        SIBLINGS.set(told)  # as a worker's server sets it
        if call.caller == "leg":
            await room.join_leg(call)
        else:
            await room.join(call, beep=call.caller == "100")
        heard[call.caller] = room.capacity

    async with app(handler) as running:
        phones = [await running.dial(f"10{k}") for k in range(MAX_MEMBERS + 1)]
        leg = await running.dial("leg")
        await phones[0].wait(0.5)
        assert room.capacity is None
        assert len(room) == MAX_MEMBERS + 1 and [c.caller for c in room.legs] == ["leg"]
        assert room.legs[0] not in room
        assert room.size == MAX_MEMBERS + 1 + 10  # as the siblings count them
        start = len(phones[0].heard)
        leg_start = len(leg.heard)
        await asyncio.gather(
            leg.speak(tone(700, 1.0, 0.3)),  # the other workers' members, through the leg
            phones[1].speak(tone(900, 1.0, 0.3)),
        )
        await phones[0].wait(0.2)
        leg_heard = leg.heard[leg_start:]
        assert goertzel_power(phones[0].heard[start:], 700) > 0.01
        assert goertzel_power(leg_heard, 900) > 0.01  # the leg carries this worker's mix
        assert goertzel_power(leg_heard, 700) < 1e-4  # and never itself back
        # An announcement, and the beeps, go into the leg: to the other workers' members.
        leg_start = len(leg.heard)
        await room.play(tone(1300, 0.5, 0.3))
        assert goertzel_power(leg.heard[leg_start:], 1300) > 0.01
        leg_start = len(leg.heard)
        await phones[0].hang_up()
        await leg.wait(0.5)
        assert goertzel_power(leg.heard[leg_start:], LEAVE_BEEP[0]) > 0.001
        for phone in phones[1:]:
            await phone.hang_up()
        await leg.hang_up()
    assert told.said[: MAX_MEMBERS + 1] == [("joined", n) for n in range(1, MAX_MEMBERS + 2)]
    assert ("left", 0) in told.said and len(told.said) == 2 * (MAX_MEMBERS + 1)


async def test_a_capacity_set_by_the_app_holds_over_workers_too():
    room = Room("small", capacity=2, gate=False)
    refused: list[str] = []

    async def handler(call):
        SIBLINGS.set(Told())
        try:
            await room.join(call, beep=False)
        except RoomFullError as exc:
            refused.append(str(exc))

    async with app(handler) as running:
        phones = [await running.dial(f"10{k}") for k in range(3)]
        await phones[0].wait(0.5)
    assert refused == [
        "room 'small' is full: it holds 2 members: tell the caller and offer another room"
    ]


def test_the_line_is_shared_in_order_and_each_ticket_taken_once(tmp_path):
    here, there = QueueBook(tmp_path / BOOK), QueueBook(tmp_path / BOOK)  # two workers
    first = here.enter("sales", 6071, since=100.0)
    second = there.enter("sales", 6072, since=101.0)
    other = there.enter("support", 6072)
    third = here.enter("sales", 6071)
    assert [there.position(t.number) for t in (first, second, third)] == [1, 2, 3]
    assert here.position(other.number) == 1 and here.waiting("sales") == 3
    assert there.take("sales") == first  # the oldest, whoever asks
    assert not here.leave(first.number)  # taken meanwhile
    assert here.position(second.number) == 1
    here.put_back(first)  # its caller could not be reached: first again
    assert there.take("sales") == first
    assert here.leave(third.number) and here.waiting("sales") == 1
    assert here.forget_worker(6072) == 2  # worker 2 started again: its callers are gone
    assert there.take("sales") is None and here.waiting("support") == 0
    here.close()
    there.close()


def test_a_rooms_size_is_the_sum_of_the_workers_heads(tmp_path):
    here, there = Headcounts(tmp_path / BOOK), Headcounts(tmp_path / BOOK)
    here.set("lobby", 6071, 3)
    there.set("lobby", 6072, 2)
    there.set("other", 6072, 1)
    assert here.total("lobby") == 5 and there.total("nobody") == 0
    here.set("lobby", 6071, 2)
    there.set("lobby", 6072, 0)
    assert there.total("lobby") == 2
    here.forget_worker(6071)
    assert here.total("lobby") == 0 and here.total("other") == 1
    here.close()
    there.close()


def test_two_workers_taking_at_once_never_take_one_caller_twice(tmp_path):
    book = QueueBook(tmp_path / BOOK)
    numbers = {book.enter("q", 6071).number for _ in range(200)}
    taken: list[list[int]] = [[], []]

    def agent(k: int) -> None:
        mine = QueueBook(tmp_path / BOOK)
        while (ticket := mine.take("q")) is not None:
            taken[k].append(ticket.number)
        mine.close()

    threads = [threading.Thread(target=agent, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken[0] + taken[1]) == sorted(numbers)
    assert all(a < b for a, b in itertools.pairwise(taken[0]))  # oldest first, each
    book.close()


class Line:
    """A worker's side of a shared line, as :class:`WorkerPlaces` is, on a real book;
    the callers of the other worker (port 6072) cannot be reached: ``fetch`` says so."""

    def __init__(self, book: QueueBook) -> None:
        self.book = book
        self.fetched: list[int] = []

    def enter(self, queue, call) -> int:
        return self.book.enter(queue.name, 6071).number

    def leave(self, number: int) -> None:
        self.book.leave(number)

    def position(self, number: int) -> int | None:
        return self.book.position(number)

    def next(self, queue):
        return self.book.take(queue.name)

    def is_here(self, ticket) -> bool:
        return ticket.worker == 6071

    async def fetch(self, ticket, agent):
        self.fetched.append(ticket.number)
        return None  # gone meanwhile (the other worker answered 410)


async def test_a_shared_line_is_taken_in_its_order_over_workers(tmp_path):
    book = QueueBook(tmp_path / BOOK)
    line = Line(book)
    elsewhere = book.enter("sales", 6072)  # a caller on the other worker, first in line
    sales = Queue("sales")
    positions: list[int | None] = []
    taken: list[str] = []

    async def handler(call):
        SHARED_ORDER.set(line)  # as a worker's server sets it
        if call.caller == "900":
            took = await sales.take(call)
            taken.append(took.caller.caller if took else "nobody")
            return
        waiting = asyncio.ensure_future(sales.wait(call, position_every=None))
        await asyncio.sleep(0.1)
        positions.append(sales.position(call))
        await waiting

    async with app(handler) as running:
        caller = await running.dial("100")
        await caller.wait(0.5)
        assert positions == [2] and len(sales) == 1  # in the whole line; here, one
        agent = await running.dial("900")
        await caller.speak(tone(700, 1.0, 0.3))
        start = len(agent.heard)
        await caller.speak(tone(700, 1.0, 0.3))
        assert goertzel_power(agent.heard[start:], 700) > 0.01  # bridged here
        await agent.hang_up()
    # The other worker's caller first (it was gone), then this one's.
    assert line.fetched == [elsewhere.number] and taken == ["100"]
    assert book.waiting("sales") == 0
    book.close()
