"""A fork never copies the process while a checkpointer thread is inside SQLite (the child would inherit
SQLite's mutexes held and hang on its first connection)."""

from __future__ import annotations

import os
import threading
import time

from shared import sqlite


def test_a_fork_waits_for_a_running_checkpoint_and_the_child_can_checkpoint() -> None:
    """While a checkpoint holds the guard, a fork does not happen; once the checkpoint ends, the fork goes
    through and the child can take the guard itself (it is not left held)."""
    forked_at: list[float] = []
    child_status: list[int] = []

    def fork_and_wait() -> None:
        pid = os.fork()
        if pid == 0:  # the child: take the guard as its own checkpointer would, then leave at once
            acquired = sqlite._IN_SQLITE.acquire(timeout=5)
            os._exit(0 if acquired else 1)
        forked_at.append(time.monotonic())
        child_status.append(os.waitpid(pid, 0)[1])

    with sqlite._IN_SQLITE:  # a checkpoint in progress
        forking = threading.Thread(target=fork_and_wait)
        forking.start()
        forking.join(0.5)
        assert forked_at == []  # the fork is waiting for the checkpoint
        released_at = time.monotonic()
    forking.join(30)
    assert forked_at and forked_at[0] >= released_at
    assert child_status == [0]
    assert sqlite._IN_SQLITE.acquire(timeout=5)  # the parent's guard is free again
    sqlite._IN_SQLITE.release()
