"""Fetch and preprocess images ahead of the model, in parallel, with bounded memory.

Fetching and decoding need different kinds of parallelism. GETs wait on the network, so a
thread pool runs `workers` of them at once. Decoding and `to_mnist` are Python-heavy CPU work
that threads cannot share (measured here: more threads made it slower, through GIL contention),
so for large batches they run in a pool of processes, one per core, fed chunk by chunk by the
fetch threads. Items come back in listing order, and only a window of images is in flight at
any time, however many there are.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from components.common.redact import shown
from components.reading.images import ImageError, to_mnist
from components.store import LocalStore, Store, StoreError

_CGROUP_QUOTAS = (  # v2 holds "quota period" in one file; v1 has two
    ("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu.max"),
    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
)
CHUNK = 8  # images per fetch task: amortises the per-task cost of the pools
LOCAL_CHUNK = 32  # images per task when decoder processes read a local folder themselves


class Item(NamedTuple):
    """One image after preprocessing: its pixels, or the reason it has none."""

    key: str
    pixels: np.ndarray | None
    error: str = ""


def load_one(store: Store, key: str) -> Item:
    """GET and preprocess one image; a missing object or a bad image becomes an error item."""
    return _items([key], _decode_chunk([_fetch(store, key)]))[0]


def _fetch(store: Store, key: str) -> bytes | str:
    """The object's bytes, or why it could not be fetched (a str)."""
    try:
        return store.get_bytes(key)
    except StoreError as e:
        return str(e) or type(e).__name__


def _decode_chunk(blobs: list[bytes | str]) -> list[np.ndarray | str]:
    """Pixels for each blob, or the reason; runs in a decoder process, so returns plain data."""
    out: list[np.ndarray | str] = []
    for blob in blobs:
        if isinstance(blob, str):  # the fetch failed
            out.append(blob)
            continue
        try:
            out.append(to_mnist(blob))
        except ImageError as e:
            out.append(str(e))
        except Exception as e:  # noqa: BLE001 - one odd file must not sink the batch: a row says it
            out.append(f"unexpected error: {type(e).__name__}: {e}"[:200])
    return out


def _items(keys: Sequence[str], results: list[np.ndarray | str]) -> list[Item]:
    """Items of the results; a reason goes into the CSV, the table and the report, so it is
    redacted and its control characters escaped here, once."""
    return [
        Item(key, None, shown(r)) if isinstance(r, str) else Item(key, r)
        for key, r in zip(keys, results, strict=True)
    ]


def _load_chunk(store: Store, keys: Sequence[str], decoders: Executor | None) -> list[Item]:
    blobs = [_fetch(store, key) for key in keys]
    if decoders is None:
        return _items(keys, _decode_chunk(blobs))
    return _items(keys, decoders.submit(_decode_chunk, blobs).result())


def available_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup quota (a pod's CPU limit)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for quota_file, period_file in _CGROUP_QUOTAS:
        try:
            quota = Path(quota_file).read_text().split()[0]
            period = Path(period_file).read_text().split()[-1]
            if quota not in ("max", "-1"):
                count = min(count or 1, max(1, math.ceil(int(quota) / int(period))))
                break
        except (OSError, ValueError, IndexError):
            continue
    return max(1, count or 1)


def decoder_pool(processes: int) -> ProcessPoolExecutor | None:
    """Processes for decoding, or None for none.

    They are forked from a clean server process (a plain fork of this one, which runs
    TensorFlow's threads, is unsafe) that has imported the decoder once, so each starts in
    milliseconds. Spawn where there is no forkserver.
    """
    if processes < 1:
        return None
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["__main__", __name__])
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(processes, mp_context=context)


def preprocess_stream(
    store: Store, keys: Sequence[str], workers: int, window: int = 512, processes: int = 0
) -> Iterator[Item]:
    """Yield an Item per key, in order, keeping about `window` images in flight.

    `workers` threads fetch; `processes` > 0 decode in that many processes, else the fetch
    threads decode too (cheaper for a handful of images). A local folder is read by the
    decoder processes themselves: reading a file is cheap CPU work, not a wait.
    """
    decoders = decoder_pool(processes)
    local = decoders is not None and isinstance(store, LocalStore)
    chunk = LOCAL_CHUNK if local else CHUNK
    chunk = max(1, min(chunk, window // (2 * workers)))
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="fetch") as fetchers:
            if local:
                tasks = (
                    decoders.submit(_load_chunk, store, part, None) for part in _parts(keys, chunk)
                )
            else:
                tasks = (
                    fetchers.submit(_load_chunk, store, part, decoders)
                    for part in _parts(keys, chunk)
                )
            yield from _in_order(tasks, ahead=max(2, window // chunk))
    finally:
        if decoders is not None:
            decoders.shutdown(cancel_futures=True)


def _parts(keys: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def _in_order(tasks: Iterator[Future[list[Item]]], ahead: int) -> Iterator[Item]:
    """Results of lazily submitted tasks, in order, with at most `ahead` tasks submitted."""
    pending: deque[Future[list[Item]]] = deque()
    try:
        for task in tasks:
            pending.append(task)
            if len(pending) >= ahead:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        for future in pending:  # the consumer stopped early: drop work not started
            future.cancel()
