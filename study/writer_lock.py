"""One writer at a time on a SQLite answer file, in arrival order, without polling.

Why: SQLite lets one transaction write at a time; a writer that finds the file locked
polls (its busy handler sleeps 1, 2, 5 ... 100 ms and retries), and a newcomer can take
the lock between two polls of someone who has waited for seconds. Under 50 writers
that starved single answers for up to 22 s. Here writers queue instead:

- threads of one process queue in a FIFO (each waiter blocks on its own lock and is
  handed the turn by the previous holder), shared by every Store on the same file;
- processes then queue in a ticket lock made of byte-range locks on a sidecar file
  `<answers>.writer-lock` (see `WriterLock._flock`): a waiter blocks in the kernel and
  is woken, alone, the moment its predecessor is done (the kernel drops the locks of a
  killed process), so SQLite's own busy polling is left only for writers that do not
  use this lock (other tools).

A transaction holds the turn for a few milliseconds (one answer), so waiting is short
and bounded by the queue length.
"""
from __future__ import annotations

import collections
import os
import threading
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: threads still queue; processes fall back to SQLite's busy timeout
    fcntl = None


SLOTS = 4096        # queue places in the sidecar file (more than the writers that ever wait at once)


class TurnTimeout(TimeoutError):
    """Waited longer than the allowed time for the writer's turn."""


class FifoLock:
    """A re-entrant lock handed to waiters in arrival order."""

    def __init__(self):
        self._mutex = threading.Lock()
        self._waiters: collections.deque = collections.deque()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self, timeout: float) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return
            if self._owner is None:
                self._owner, self._depth = me, 1
                return
            gate = threading.Lock()
            gate.acquire()
            self._waiters.append(gate)
        if gate.acquire(timeout=timeout):
            with self._mutex:                 # the releaser handed the lock over to us
                self._owner, self._depth = me, 1
            return
        with self._mutex:
            try:
                self._waiters.remove(gate)    # give up our place in the queue
            except ValueError:                # handed over just as we timed out: pass it on
                self._owner = None
                self._hand_over()
            raise TurnTimeout(f"waited more than {timeout:.0f} s for the answer store")

    def release(self) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth:
                return
            self._owner = None
            self._hand_over()

    def _hand_over(self) -> None:
        if self._waiters:
            self._owner = -1                  # reserved for the woken waiter
            self._waiters.popleft().release()


class WriterLock:
    """The in-process FIFO plus the cross-process flock for one SQLite file."""

    def __init__(self, db_path: Path | None):
        self.fifo = FifoLock()
        self.lock_path = Path(str(db_path) + ".writer-lock") if db_path is not None else None
        self._fd: int | None = None
        self._fd_pid: int | None = None
        self._slots: tuple[int, int] | None = None
        self._local = threading.local()

    def acquire(self, timeout: float = 60.0) -> None:
        """Wait for this thread's turn (re-entrant); TurnTimeout after `timeout` seconds."""
        self.fifo.acquire(timeout)
        if self.holds_turn():
            self._local.depth += 1
            return
        try:
            self._flock()
        except BaseException:
            self.fifo.release()
            raise
        self._local.depth = 1

    def release(self) -> None:
        self._local.depth -= 1
        if self._local.depth == 0:
            self._unflock()
        self.fifo.release()

    def holds_turn(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    @contextmanager
    def turn(self, timeout: float = 60.0):
        self.acquire(timeout)
        try:
            yield
        finally:
            self.release()

    def _flock(self) -> None:
        """Take the next ticket and wait for the previous ticket's holder, across processes.

        Byte-range locks on the sidecar file form a queue: ticket t (a counter at byte
        SLOTS) waits on byte t % SLOTS, which its predecessor locked when it took ticket
        t - 1 and unlocks when done; the kernel wakes exactly that one waiter, and
        releases every lock of a process that dies, so a killed writer never blocks the
        queue. (A single lock with many waiters wakes all of them at every release.)"""
        if fcntl is None or self.lock_path is None:
            return
        if self._fd is None or self._fd_pid != os.getpid():   # a forked child needs its own open file
            self._fd, self._fd_pid = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        fd = self._fd
        fcntl.lockf(fd, fcntl.LOCK_EX, 8, SLOTS, os.SEEK_SET)          # the ticket counter
        try:
            ticket = int.from_bytes(os.pread(fd, 8, SLOTS).ljust(8, b"\0"), "little")
            os.pwrite(fd, ((ticket + 1) % (1 << 62)).to_bytes(8, "little"), SLOTS)
            mine, successor = ticket % SLOTS, (ticket + 1) % SLOTS
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, successor, os.SEEK_SET)  # our successor waits on this
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 8, SLOTS, os.SEEK_SET)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, mine, os.SEEK_SET)       # until the predecessor is done
        except BaseException:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, successor, os.SEEK_SET)
            raise
        self._slots = (mine, successor)

    def _unflock(self) -> None:
        if fcntl is not None and self._fd is not None and self._slots is not None:
            for slot in self._slots:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, slot, os.SEEK_SET)
            self._slots = None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_LOCKS: dict[tuple[int, str], WriterLock] = {}
_LOCKS_MUTEX = threading.Lock()


def forget_writer_lock(db_path: str) -> None:
    """Close and drop this process's writer lock of `db_path` (its file is being removed)."""
    key = (os.getpid(), str(Path(db_path).resolve()))
    with _LOCKS_MUTEX:
        lock = _LOCKS.pop(key, None)
    if lock is not None:
        lock.close()


def writer_lock(db_path: str | None) -> WriterLock:
    """The process-wide writer lock of one SQLite file (None: an in-memory database)."""
    path = str(Path(db_path).resolve()) if db_path else ":memory:"
    key = (os.getpid(), path)          # a forked child starts with fresh locks
    with _LOCKS_MUTEX:
        if key not in _LOCKS:
            _LOCKS[key] = WriterLock(Path(path) if db_path else None)
        return _LOCKS[key]
