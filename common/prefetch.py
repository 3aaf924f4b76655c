"""Produce the next items in a background thread while the caller works on the current one.

Decoding PNGs (Pillow) and copying frames release the GIL, so a reader thread overlaps them with
the U-Net's compute, at no cost in memory beyond `depth` items and with no worker processes to
start or to pickle tensors through.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield `items` in order, producing up to `depth` of them ahead in a thread.

    An exception raised while producing an item is raised here, at that item. Leaving the loop
    early (break, an exception) stops the thread at its next item.
    """
    if depth < 1:
        raise ValueError(f"prefetch depth must be >= 1, got {depth}")
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as err:   # handed to the consumer, raised there
            put((_DONE, err))
            return
        put((_DONE, None))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, err = ready.get()
            if item is _DONE:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        thread.join()
