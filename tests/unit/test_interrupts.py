"""Held interrupts (``interrupts.deferred_interrupts``): a stop signal during work that
must not be interrupted where it lands (psycopg reading a COPY) is noted by the CLI's
handler, and raised where it is safe, or as the block ends, with real signals."""

from __future__ import annotations

import os
import signal

import pytest

from caracal_forensics import interrupts


def _handler(signum: int, frame: object) -> None:  # the CLI's, as cli.stopping installs it
    if not interrupts.hold_interrupt():
        raise KeyboardInterrupt


@pytest.fixture
def sigusr1():
    previous = signal.signal(signal.SIGUSR1, _handler)
    yield
    signal.signal(signal.SIGUSR1, previous)


def test_a_signal_outside_a_holding_block_is_raised_where_it_lands(sigusr1) -> None:
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGUSR1)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a bytecode or two: the handler runs


def test_a_held_signal_is_raised_as_the_block_ends_in_place_of_its_error(sigusr1) -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt) as caught:
        with interrupts.deferred_interrupts():
            os.kill(os.getpid(), signal.SIGUSR1)
            reached.append("after the signal")  # the work goes on to a safe place
            raise RuntimeError("the cancelled statement's error")
    assert reached == ["after the signal"]
    assert isinstance(caught.value.__context__, RuntimeError)
    # held once: the next block is not interrupted
    with interrupts.deferred_interrupts():
        interrupts.check_interrupt()


def test_a_held_signal_is_raised_where_the_work_checks(sigusr1) -> None:
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred_interrupts():
            interrupts.check_interrupt()  # nothing held yet: goes on
            os.kill(os.getpid(), signal.SIGUSR1)
            interrupts.check_interrupt()
            pytest.fail("the held interrupt was not raised at the check")
    with interrupts.deferred_interrupts():  # and is no longer held after the block
        interrupts.check_interrupt()


def test_a_block_without_a_signal_raises_nothing_and_keeps_its_error() -> None:
    with pytest.raises(ValueError):
        with interrupts.deferred_interrupts():
            raise ValueError("its own")
