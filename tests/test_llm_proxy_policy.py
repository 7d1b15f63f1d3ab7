"""Retry timing, proxy keys, request checks and upstream error mapping, as pure functions."""

from __future__ import annotations

import json

import pytest

from llm_proxy.chat_request import parse_chat_request
from llm_proxy.errors import (
    InvalidProxyKey,
    InvalidRequest,
    UpstreamAuthFailed,
    UpstreamStatus,
    upstream_status_error,
)
from llm_proxy.failover import RetryPolicy
from llm_proxy.keys import ProxyKeys


def test_retry_policy_waits_exactly_what_retry_after_asks_when_it_is_reasonable() -> None:
    policy = RetryPolicy(max_retries=3)

    assert policy.delay(0, 2.5) == 2.5
    assert policy.delay(2, 0.0) == 0.0
    assert policy.delay(0, policy.max_retry_after + 1) is None


def test_retry_policy_backs_off_exponentially_with_jitter_up_to_its_cap() -> None:
    policy = RetryPolicy(max_retries=10, base_delay=0.5, max_delay=4.0)

    for retry, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
        delays = {policy.delay(retry, None) for _ in range(50)}
        assert all(delay is not None and ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1


def test_proxy_keys_accept_any_configured_key_and_nothing_else() -> None:
    keys = ProxyKeys(["one", "two"])

    keys.check("Bearer one")
    keys.check("bearer two")
    for header in (None, "", "Bearer", "Bearer three", "Basic one", "one"):
        with pytest.raises(InvalidProxyKey):
            keys.check(header)


def test_proxy_keys_let_everyone_in_when_none_is_configured() -> None:
    keys = ProxyKeys([])

    keys.check(None)
    assert not keys.required


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"not json", None),
        (b"[]", None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "m", "messages": "hi"}', "messages"),
        (b'{"model": "m", "messages": [{"role": "wizard"}]}', "messages[0]"),
        (b'{"model": "m", "messages": [{"role": "user"}], "stream": "yes"}', "stream"),
        (
            b'{"model": "m", "messages": [{"role": "user"}], "stream_options": {}}',
            "stream_options",
        ),
    ],
)
def test_chat_request_is_refused_naming_the_parameter_when_it_is_malformed(
    body: bytes, param: str | None
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_chat_request(body)

    assert raised.value.status == 400
    assert raised.value.param == param


def test_upstream_error_keeps_an_openai_shaped_body_and_its_rate_limit_headers() -> None:
    body = {"error": {"message": "slow", "type": "requests", "param": None, "code": "rate"}}
    headers = {"retry-after": "3", "x-ratelimit-reset": "1s", "set-cookie": "no"}

    error = upstream_status_error(429, json.dumps(body).encode(), headers)

    assert isinstance(error, UpstreamStatus)
    assert (error.status, error.body(), error.retry_after) == (429, body, 3.0)
    assert error.headers() == {"retry-after": "3", "x-ratelimit-reset": "1s"}
    assert error.retryable and error.fallback


def test_upstream_error_is_wrapped_in_openai_shape_when_its_body_is_not() -> None:
    error = upstream_status_error(502, b"<html>Bad Gateway</html>", {})

    assert error.status == 502
    assert (
        error.body()["error"]["message"] == "upstream answered HTTP 502: <html>Bad Gateway</html>"
    )
    assert error.body()["error"]["code"] == "upstream_status"


def test_upstream_refusing_the_proxys_key_is_a_502_not_the_callers_401() -> None:
    error = upstream_status_error(401, b'{"error": {"message": "bad key"}}', {})

    assert isinstance(error, UpstreamAuthFailed)
    assert error.status == 502
    assert error.fallback and not error.retryable


def test_upstream_client_error_goes_back_to_the_caller_without_retry_or_fallback() -> None:
    error = upstream_status_error(400, b'{"error": {"message": "bad", "code": "x"}}', {})

    assert error.status == 400
    assert not error.retryable and not error.fallback
