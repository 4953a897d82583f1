"""The outbox's delivery workers: every transport on threads of its own.

One `TransportWorker` per transport (Slack's `chat`, `webhook`, `email`)
claims only its own transport's due messages, as many as it has free threads,
and delivers each on one of them, inside a total deadline (`opsloop.deadline`,
which the webhook sender's client keeps; the mail sender keeps its own, and
Slack's Web API client bounds each call). So a customer webhook or a mail
server that takes a minute to answer holds up one thread of its own transport:
never a Slack post or a page, and never the other customers' webhooks.
Order within a lane holds as before: only a lane's oldest message is claimed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from opsloop.deadline import deadline
from opsloop.outbox import CHAT, Dispatcher

log = logging.getLogger(__name__)

THREADS: Mapping[str, int] = {CHAT: 2, "webhook": 4, "email": 2}  # others: DEFAULT_THREADS
DEFAULT_THREADS = 2
SEND_DEADLINE = 60.0  # seconds: no send of any transport holds a thread longer (each sender is stricter)


class TransportWorker:
    def __init__(self, dispatcher: Dispatcher, transport: str, *, threads: int, idle: float = 0.5) -> None:
        self.dispatcher = dispatcher
        self.transport = transport
        self.threads = threads
        self.idle = idle
        self._free = threading.Semaphore(threads)
        self._wake = dispatcher.waiter()
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._stop.clear()
        self._pool = ThreadPoolExecutor(max_workers=self.threads,
                                        thread_name_prefix=f"opsloop-outbox-{self.transport}")
        self._loop = threading.Thread(target=self._run, name=f"opsloop-outbox-{self.transport}", daemon=True)
        self._loop.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._loop is not None:
            self._loop.join(timeout=10)
            self._loop = None
        if self._pool is not None:
            # a send still hanging is left to its deadline; its message's lease covers it
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self._claim()
            except Exception:
                log.exception("outbox %s: claiming failed; trying again", self.transport)
                claimed = 0
            if not claimed:
                self._wake.wait(self.idle)
                self._wake.clear()

    def _claim(self) -> int:
        free = 0
        while free < self.threads and self._free.acquire(blocking=False):
            free += 1
        if not free:
            return 0
        ids: list[int] = []
        try:
            ids = self.dispatcher.claim(free, transports={self.transport})
            for message_id in ids:
                assert self._pool is not None
                self._pool.submit(self._deliver, message_id)
        finally:
            for _ in range(free - len(ids)):
                self._free.release()
        return len(ids)

    def _deliver(self, message_id: int) -> None:
        try:
            with deadline(SEND_DEADLINE):
                self.dispatcher.deliver(message_id)
        finally:
            self._free.release()
            self._wake.set()  # the lane's next message may be due now


def transport_workers(dispatcher: Dispatcher, *, idle: float = 0.5) -> list[TransportWorker]:
    """A worker for each transport the dispatcher has a sender for."""
    return [TransportWorker(dispatcher, transport, threads=THREADS.get(transport, DEFAULT_THREADS), idle=idle)
            for transport in dispatcher.senders]
