"""The client's concurrency bound serves a listing's next page before requests queued after it
started, so a long listing is not starved by the queue (and a cancelled waiter loses no slot)."""

from __future__ import annotations

import asyncio

import httpx
from connector_helpers import run

from circleci_analytics.connectors.client import _Slots


def test_waiters_are_served_by_priority_then_arrival() -> None:
    async def go() -> list[str]:
        slots, order = _Slots(1), []
        await slots.acquire(0)  # the one slot is busy

        async def waiter(name: str, priority: int) -> None:
            await slots.acquire(priority)
            order.append(name)
            slots.release()

        tasks = [asyncio.create_task(waiter(n, p)) for n, p in (("a", 0), ("b", -2), ("c", 0), ("d", -1))]
        await asyncio.sleep(0)
        slots.release()
        await asyncio.gather(*tasks)
        return order

    assert run(go()) == ["b", "d", "a", "c"]


def test_a_cancelled_waiter_does_not_lose_the_slot() -> None:
    async def go() -> bool:
        slots = _Slots(1)
        await slots.acquire(0)
        cancelled = asyncio.create_task(slots.acquire(0))
        later = asyncio.create_task(slots.acquire(0))
        await asyncio.sleep(0)
        cancelled.cancel()
        slots.release()
        await asyncio.wait_for(later, 1)
        slots.release()
        return slots.free == 1 and not slots.waiting

    assert run(go())


def test_a_listing_is_not_starved_by_requests_queued_after_it(make_client) -> None:
    seen: list[str] = []
    started = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("page-token")
        seen.append(token or request.url.path.rsplit("/", 1)[-1])
        if request.url.path.endswith("/list"):
            started.set()
            await asyncio.sleep(0.01)  # the others queue meanwhile
            nxt = {None: "p2", "p2": "p3", "p3": None}[token]
            return httpx.Response(200, json={"items": [token], "next_page_token": nxt})
        return httpx.Response(200, json={})

    async def go() -> None:
        async with make_client(handler, max_concurrency=1) as client:

            async def listing() -> list:
                return [item async for item in client.paginate("/project/gh/a/b/list")]

            async def others() -> None:
                await started.wait()
                await asyncio.gather(*(client.get_json(f"/project/gh/a/b/one{i}") for i in range(3)))

            await asyncio.gather(listing(), others())

    run(go())
    # Each next page is asked for once its page is in, so it waits for the one request that took
    # the freed slot meanwhile, not for the whole queue (first come, first served: one0..2, p2, p3).
    assert seen == ["list", "one0", "p2", "one1", "p3", "one2"]
