"""ThrottledLog: a flood of one kind of event costs a bounded number of log lines."""

from __future__ import annotations

import logging

import pytest

from service_logging import ThrottledLog


def test_at_most_burst_lines_per_window_then_a_count_of_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    throttled = ThrottledLog(
        logging.getLogger("flood"), burst=3, window_s=10.0, clock=lambda: now[0]
    )
    with caplog.at_level(logging.WARNING, logger="flood"):
        for _ in range(1000):
            throttled.warning("refused", remote="x")
        assert len(caplog.records) == 3
        now[0] = 10.0
        throttled.warning("refused", remote="x")
    assert len(caplog.records) == 4
    assert caplog.records[-1].suppressed == 997
