"""One function over many inputs, in worker processes, results in the inputs' order.

At most ``2 * jobs`` inputs are handed out ahead of the consumer (and, for inputs that carry
their bytes, about ``budget`` bytes of them), so memory does not grow with the number of
inputs. ``work`` is expected to report its own failures in its result; what it cannot report
is handled here, per input: an exception that escapes it or a result that cannot come back
becomes that input's error, and a worker process that dies (killed for memory, a crash in
native code) breaks the pool: the inputs it took down with it are run again one at a time in a
fresh process, so only the one that kills its worker again is lost, and named.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable, Iterator

__all__ = ["in_order"]

DIED = "its worker process died while reading it"


def in_order(items: Iterable, work: Callable[[Any], Any], jobs: int, error: Callable[[Any, str], Any],
             weight: Callable[[Any], int] = lambda item: 0, budget: int = 0) -> Iterator[Any]:
    """``work(item)`` for every item, in order; ``error(item, reason)`` stands in for a result
    that could not be had."""
    if jobs <= 1:
        for item in items:
            yield _here(work, item, error)
        return
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    pools: list = []

    def current():
        if not pools:
            pools.append(ProcessPoolExecutor(max_workers=jobs))
        return pools[-1]

    def submit(item):
        for _ in range(2):
            pool = current()
            try:
                return pool, pool.submit(work, item)
            except BrokenProcessPool:
                _retire(pools, pool)
        return None, None

    def settle(item, pool, future):
        if future is None:
            return _alone(work, item, error)
        try:
            return future.result()
        except BrokenProcessPool:
            _retire(pools, pool)
            return _alone(work, item, error)
        except Exception as exc:  # noqa: BLE001 - the result could not come back (pickling, ...)
            return error(item, _describe(exc))

    window: deque = deque()
    held = 0
    try:
        for item in items:
            cost = weight(item)
            while window and (len(window) >= 2 * jobs or held + cost > budget > 0):
                head, pool, future, spent = window.popleft()
                held -= spent
                yield settle(head, pool, future)
            pool, future = submit(item)
            window.append((item, pool, future, cost))
            held += cost
        while window:
            head, pool, future, _ = window.popleft()
            yield settle(head, pool, future)
    finally:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)


def _retire(pools: list, pool) -> None:
    if pool in pools:
        pools.remove(pool)
        pool.shutdown(wait=False, cancel_futures=True)


def _here(work, item, error):
    try:
        return work(item)
    except Exception as exc:  # noqa: BLE001
        return error(item, _describe(exc))


def _alone(work, item, error):
    """``work(item)`` in a process of its own: the input that kills it is the one to blame."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(max_workers=1)
    try:
        return pool.submit(work, item).result()
    except BrokenProcessPool:
        return error(item, DIED)
    except Exception as exc:  # noqa: BLE001
        return error(item, _describe(exc))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _describe(exc: BaseException) -> str:
    from .sources import describe

    return f"could not be processed ({describe(exc)})"
