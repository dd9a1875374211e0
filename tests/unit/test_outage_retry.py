"""The stream worker's retry policy for outages (shared.events.consumer.outage_retrying): which failures it
waits out, how its waits grow, and that it gives up after its budget with the last error."""

from __future__ import annotations

import time

import pytest
from kafka.errors import MessageSizeTooLargeError, UnknownProducerIdError

from shared.errors import NotReadyError
from shared.events.consumer import (
    OUTAGE_WAIT_INITIAL_SECONDS,
    OUTAGE_WAIT_JITTER_SECONDS,
    OUTAGE_WAIT_MAX_SECONDS,
    DeliveryFailedError,
    TransientDeliveryError,
    outage_retrying,
    worth_waiting_out,
)


def delivery_failure(cause: Exception, kind: type[DeliveryFailedError] = DeliveryFailedError) -> DeliveryFailedError:
    try:
        raise kind("not acknowledged") from cause
    except DeliveryFailedError as error:
        return error


def test_outages_are_waited_out_and_faults_are_not() -> None:
    """A store down, a broker not acknowledging, a producer the broker forgot: outages. A record too large for
    any broker, or a bug: not."""
    assert worth_waiting_out(NotReadyError("state store down"))
    assert worth_waiting_out(delivery_failure(TimeoutError(), TransientDeliveryError))
    assert worth_waiting_out(delivery_failure(UnknownProducerIdError()))
    assert not worth_waiting_out(delivery_failure(MessageSizeTooLargeError()))
    assert not worth_waiting_out(ValueError("a bug"))


def test_the_batch_goes_through_once_the_dependency_is_back_after_growing_waits() -> None:
    """Three failures, then success: the result comes back, after three waits that grow from the first to
    at most the cap (jitter included)."""
    waits: list[float] = []
    failures = iter([NotReadyError("down")] * 3)

    def attempt() -> str:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "decided"

    assert outage_retrying(60, waits.append)(attempt) == "decided"
    assert len(waits) == 3
    assert OUTAGE_WAIT_INITIAL_SECONDS <= waits[0] <= OUTAGE_WAIT_INITIAL_SECONDS + OUTAGE_WAIT_JITTER_SECONDS
    assert waits[2] > waits[0]
    assert all(wait <= OUTAGE_WAIT_MAX_SECONDS for wait in waits)


def test_the_waits_stop_growing_at_the_cap() -> None:
    """Twenty failures in a row: the later waits are all at the cap, never beyond it."""
    waits: list[float] = []
    failures = iter([NotReadyError("down")] * 20)

    def attempt() -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure

    outage_retrying(3600, waits.append)(attempt)
    assert len(waits) == 20
    assert waits[-5:] == [OUTAGE_WAIT_MAX_SECONDS] * 5


def test_after_the_budget_the_last_error_is_raised() -> None:
    """A dependency that never comes back: within a budget of 0.3 s the attempts stop and the last NotReadyError
    itself is raised (not a wrapper), so the worker exits uncommitted."""
    attempts: list[int] = []

    def attempt() -> None:
        attempts.append(1)
        raise NotReadyError(f"down, attempt {len(attempts)}")

    started = time.monotonic()
    with pytest.raises(NotReadyError) as raised:
        outage_retrying(0.3, lambda seconds: time.sleep(min(seconds, 0.05)))(attempt)
    assert time.monotonic() - started < 2
    assert len(attempts) > 1
    assert str(raised.value) == f"down, attempt {len(attempts)}"


def test_a_fault_is_raised_at_once_without_waiting() -> None:
    """A fault of the record itself (too large for the broker) is no outage: raised at once, no wait, no retry."""
    waits: list[float] = []

    def attempt() -> None:
        raise delivery_failure(MessageSizeTooLargeError())

    with pytest.raises(DeliveryFailedError):
        outage_retrying(60, waits.append)(attempt)
    assert waits == []
