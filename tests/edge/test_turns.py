"""Turns for heavy steps: one per loop iteration, in order, robust to cancellation."""

from __future__ import annotations

import asyncio

from bridge.edge.turns import Spread, turns


class Iterations:
    """Counts event-loop iterations: a callback that re-schedules itself once per pass."""

    def __init__(self) -> None:
        self.n = 0
        self.running = True
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.n += 1
        if self.running:
            asyncio.get_running_loop().call_soon(self._tick)


async def test_at_most_one_turn_per_iteration_in_arrival_order() -> None:
    it = Iterations()
    seen: list[tuple[int, int]] = []

    async def step(i: int) -> None:
        await turns().turn()
        seen.append((i, it.n))

    await asyncio.gather(*(step(i) for i in range(8)))
    it.running = False
    assert [i for i, _ in seen] == list(range(8))
    iterations = [n for _, n in seen]
    assert len(set(iterations)) == len(iterations)  # never two in one pass


async def test_a_cancelled_waiter_does_not_stop_the_queue() -> None:
    t = turns()
    await t.turn()  # this iteration's turn is taken: the next callers wait
    done: list[int] = []

    async def step(i: int) -> None:
        await t.turn()
        done.append(i)

    tasks = [asyncio.create_task(step(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert t.waiting == 2  # 0 took the free turn of that pass; 1 and 2 queue
    tasks[1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert done == [0, 2]
    assert t.waiting == 0


async def test_a_free_turn_is_immediate() -> None:
    await asyncio.sleep(0)
    t = turns()
    assert t.waiting == 0
    await asyncio.wait_for(t.turn(), 1.0)


async def test_spread_runs_a_bounded_number_per_iteration_in_order() -> None:
    s = Spread(asyncio.get_running_loop(), per_iteration=4)
    ran: list[int] = []
    for i in range(10):
        s.run(lambda i=i: ran.append(i))
    assert ran == [0, 1, 2, 3]  # this iteration's share; the rest wait, in order
    assert s.waiting == 6
    await asyncio.sleep(0)  # one loop iteration
    assert ran == list(range(8))
    await asyncio.sleep(0)
    assert ran == list(range(10))
    assert s.waiting == 0
    await asyncio.sleep(0)  # a fresh iteration: room again at once
    s.run(lambda: ran.append(10))
    assert ran[-1] == 10
