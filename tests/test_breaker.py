"""The circuit breaker on its own; tests/api/test_caching.py runs it against a paused Redis."""

import logging

import pytest

from trees.breaker import CircuitBreaker


class Unavailable(Exception):
    pass


class Dependency:
    """Stands in for a service that is up or down, and counts the calls it gets."""

    def __init__(self) -> None:
        self.up = True
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if not self.up:
            raise Unavailable("no answer")
        return "answer"


def breaker(seconds: float) -> CircuitBreaker:
    return CircuitBreaker(
        "Thing", errors=(Unavailable,), open_seconds=lambda: seconds, consequence="doing without"
    )


def test_a_failure_opens_the_breaker_and_later_calls_are_skipped():
    dependency, thing = Dependency(), breaker(60)
    dependency.up = False
    results = [thing.call(dependency, fallback="fallback") for _ in range(10)]
    assert results == ["fallback"] * 10
    assert dependency.calls == 1
    assert thing.is_open()


def test_once_the_interval_is_over_it_tries_again():
    dependency, thing = Dependency(), breaker(0)
    dependency.up = False
    thing.call(dependency, fallback=None)
    thing.call(dependency, fallback=None)
    assert dependency.calls == 2
    dependency.up = True
    assert thing.call(dependency, fallback=None) == "answer"
    assert not thing.is_open()


def test_an_outage_logs_one_warning_per_failed_try_and_one_line_when_it_ends(caplog):
    dependency, thing = Dependency(), breaker(0)
    dependency.up = False
    with caplog.at_level(logging.INFO, logger="trees.breaker"):
        for _ in range(3):
            thing.call(dependency, fallback=None)
        dependency.up = True
        thing.call(dependency, fallback=None)
        thing.call(dependency, fallback=None)
    messages = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert [level for level, _ in messages] == ["WARNING", "WARNING", "WARNING", "INFO"]
    assert messages[0][1].startswith("Thing is unavailable (Unavailable: no answer); doing")
    assert messages[1][1].startswith("Thing still unavailable after")
    assert messages[3][1].startswith("Thing answers again")
    assert all(record.exc_info is None for record in caplog.records)


def test_other_errors_are_not_its_business():
    thing = breaker(60)

    def broken():
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        thing.call(broken, fallback=None)
    assert not thing.is_open()
