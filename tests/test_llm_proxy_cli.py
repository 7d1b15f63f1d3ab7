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
        (["--llm-base-url", "http://127.0.0.1:9/v1"], "--model"),
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
    assert upstream.requests[0].json["model"] == "local-model"
    assert upstream.requests[0].headers["authorization"] == f"Bearer {UPSTREAM_API_KEY}"
    assert UPSTREAM_API_KEY not in output
