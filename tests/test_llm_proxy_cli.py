"""`agent-service llm-proxy` as a process: flags, keys, clean exits, and keys kept out of logs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from tests.support.fake_credentials import UPSTREAM_API_KEY
from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import ROOT, ServiceProcess, free_port
from tests.support.proxy_process import running_proxy

USER = [{"role": "user", "content": "Say hello"}]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_service", "llm-proxy", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_llm_proxy_help_names_every_flag_with_its_environment_variable() -> None:
    result = run_cli("--help")

    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for flag, variable in [
        ("--host", "AGENT_HOST"),
        ("--proxy-port", "AGENT_PROXY_PORT"),
        ("--llm-base-url", "AGENT_LLM_BASE_URL"),
        ("--llm-api-key", "AGENT_LLM_API_KEY"),
        ("--model", "AGENT_MODEL"),
        ("--proxy-key", "AGENT_PROXY_KEY"),
        ("--proxy-key-file", "AGENT_PROXY_KEY_FILE"),
        ("--routes", "AGENT_PROXY_ROUTES"),
        ("--connect-timeout", "AGENT_PROXY_CONNECT_TIMEOUT"),
        ("--idle-timeout", "AGENT_PROXY_IDLE_TIMEOUT"),
        ("--max-retries", "AGENT_PROXY_MAX_RETRIES"),
        ("--demo-delay-ms", "AGENT_DEMO_DELAY_MS"),
    ]:
        assert flag in help_text
        assert variable in help_text


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--routes", "/nonexistent/routes.toml"], "cannot read routes file"),
    ],
)
def test_llm_proxy_exits_2_with_the_reason_when_its_configuration_is_unusable(
    args: list[str], complaint: str
) -> None:
    result = run_cli("--proxy-port", str(free_port()), *args)

    assert result.returncode == 2
    assert complaint in result.stderr


def test_llm_proxy_exits_0_on_sigint(tmp_path: Path) -> None:
    port = free_port()
    service = ServiceProcess(
        ["llm-proxy", "--proxy-port", str(port)],
        f"http://127.0.0.1:{port}/healthz",
        tmp_path / "proxy.log",
    ).start()

    code = service.stop(signal.SIGINT)

    assert code == 0, service.output()


def test_llm_proxy_exits_0_on_sigterm_while_a_stream_is_open(tmp_path: Path) -> None:
    port = free_port()
    service = ServiceProcess(
        ["llm-proxy", "--proxy-port", str(port), "--demo-delay-ms", "500"],
        f"http://127.0.0.1:{port}/healthz",
        tmp_path / "proxy.log",
    ).start()
    api = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
    stream = api.chat.completions.create(model="demo", messages=USER, stream=True)
    next(iter(stream))

    code = service.stop(signal.SIGTERM)
    stream.close()

    assert code == 0, service.output()


def test_llm_proxy_accepts_only_its_keys_and_never_logs_them(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# team keys\nkey-from-file-one\n\nkey-from-file-two\n")

    with running_proxy(
        tmp_path, "--proxy-key", "key-from-flag", "--proxy-key-file", str(key_file)
    ) as proxy:
        for key in ("key-from-flag", "key-from-file-one", "key-from-file-two"):
            api = openai.OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0)
            assert api.chat.completions.create(model="demo", messages=USER).choices
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(
                base_url=proxy.base_url, api_key="# team keys", max_retries=0
            ).models.list()
        anonymous = urllib.request.Request(f"{proxy.base_url}/models")
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(anonymous, timeout=10)
        assert raised.value.code == 401
        assert json.loads(raised.value.read())["error"]["code"] == "invalid_api_key"
        with urllib.request.urlopen(f"http://127.0.0.1:{proxy.port}/healthz", timeout=10) as health:
            assert health.status == 200
        output = proxy.service.output()

    for key in ("key-from-flag", "key-from-file-one", "key-from-file-two"):
        assert key not in output


def test_llm_proxy_serves_the_model_named_by_its_flags_with_the_given_upstream_key(
    tmp_path: Path,
) -> None:
    with (
        FakeUpstream() as upstream,
        running_proxy(
            tmp_path,
            "--llm-base-url",
            upstream.base_url,
            "--model",
            "local-model",
            "--llm-api-key",
            UPSTREAM_API_KEY,
        ) as proxy,
    ):
        api = openai.OpenAI(base_url=proxy.base_url, api_key="anything", max_retries=0)
        assert [model.id for model in api.models.list()] == ["local-model"]
        answer = api.chat.completions.create(model="local-model", messages=USER)
        output = proxy.service.output()

    assert answer.choices[0].message.content == "Hello from the fake upstream."
    [asked] = [request for request in upstream.requests if request.method == "POST"]
    assert asked.json["model"] == "local-model"
    assert asked.headers["authorization"] == f"Bearer {UPSTREAM_API_KEY}"
    assert UPSTREAM_API_KEY not in output


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_llm_proxy_without_model_forwards_the_callers_model_name(tmp_path: Path) -> None:
    with (
        FakeUpstream() as upstream,
        running_proxy(tmp_path, "--llm-base-url", upstream.base_url) as proxy,
    ):
        upstream.models = ["qwen2.5-coder", "llama3.1"]
        api = openai.OpenAI(base_url=proxy.base_url, api_key="anything", max_retries=0)
        listed = [model.id for model in api.models.list()]
        api.chat.completions.create(model="llama3.1", messages=USER)

    assert listed == ["qwen2.5-coder", "llama3.1"]
    [asked] = [request for request in upstream.requests if request.method == "POST"]
    assert asked.json["model"] == "llama3.1"


def test_a_wildcard_route_catches_every_other_model_name(tmp_path: Path) -> None:
    with FakeUpstream() as upstream:
        routes = f"""
[models.demo]
upstreams = [{{ backend = "demo" }}]

[models."*"]
upstreams = [{{ base_url = "{upstream.base_url}" }}]
"""
        with running_proxy(tmp_path, routes=routes) as proxy:
            api = openai.OpenAI(base_url=proxy.base_url, api_key="anything", max_retries=0)
            demo = api.chat.completions.create(model="demo", messages=USER)
            other = api.chat.completions.create(model="some-model", messages=USER)

    assert demo.choices[0].message.content
    assert other.choices[0].message.content == "Hello from the fake upstream."
    [asked] = [request for request in upstream.requests if request.method == "POST"]
    assert asked.json["model"] == "some-model"


def test_readyz_probes_the_upstream_and_names_a_refused_key(tmp_path: Path) -> None:
    with FakeUpstream() as upstream:
        upstream.api_key = UPSTREAM_API_KEY
        good = ("--llm-base-url", upstream.base_url, "--llm-api-key", UPSTREAM_API_KEY)
        with running_proxy(tmp_path, *good, "--model", "m") as proxy:
            ready = _get(f"http://127.0.0.1:{proxy.port}/readyz")
        with running_proxy(
            tmp_path, "--llm-base-url", upstream.base_url, "--model", "m", "--llm-api-key", "wrong"
        ) as proxy:
            refused = _get(f"http://127.0.0.1:{proxy.port}/readyz")
            health = _get(f"http://127.0.0.1:{proxy.port}/healthz")
            output = proxy.service.output()

    assert ready == (200, {"status": "ready", "problems": []})
    assert refused[0] == 503
    assert refused[1]["status"] == "unready"
    assert "refuses the API key" in str(refused[1]["problems"])
    assert health[0] == 200  # liveness does not probe
    assert "upstream not ready" in output  # said at start, in the log
    assert "wrong" not in output


def test_readyz_names_an_unreachable_upstream(tmp_path: Path) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/v1"
    with running_proxy(
        tmp_path, "--llm-base-url", unreachable, "--model", "m", "--connect-timeout", "2"
    ) as proxy:
        status, body = _get(f"http://127.0.0.1:{proxy.port}/readyz")

    assert status == 503
    assert unreachable in str(body["problems"])
