"""Command-line conventions, through the real `agent-service` processes: --version and --help
on stdout, every setting with its environment variable, operator mistakes as one line with no
traceback, SIGHUP stopping servers cleanly, logs readable by people and machines."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_service.cli import COMMANDS, build_parser, version
from tests.support.fake_credentials import UPSTREAM_API_KEY
from tests.support.fake_upstream import FAKE_MODEL, FakeUpstream
from tests.support.procs import ROOT, free_port, wait_healthy
from tests.support.wsclient import ProtocolClient

SERVERS = ("up", "gateway", "orchestrator", "llm-proxy")
# Flags that are actions or one-off choices, not settings a deployment would keep in its environment.
ONE_OFF_FLAGS = {"--help", "--version", "--create-sample", "--replay", "--resume", "--continue"}


def agent_service(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_service", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)], ids=str)
def test_every_command_prints_its_version_on_stdout(command: list[str]) -> None:
    done = agent_service(*command, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"agent-service {version()}"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_goes_to_stdout(command: str) -> None:
    done = agent_service(command, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith(f"usage: agent-service {command}")
    assert done.stderr == ""


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", [*SERVERS, "ide"])
def test_every_setting_names_its_environment_variable(command: str) -> None:
    missing = [
        action.option_strings[-1]
        for action in _subparsers()[command]._actions
        if action.option_strings
        and action.option_strings[-1] not in ONE_OFF_FLAGS
        and "env AGENT_" not in (action.help or "")
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("args", "env", "flag"),
    [
        (["orchestrator", "--tool-timeout", "-1"], {}, "--tool-timeout"),
        (["orchestrator", "--max-steps", "0"], {}, "--max-steps"),
        (["orchestrator"], {"AGENT_MAX_STEPS": "many"}, "AGENT_MAX_STEPS"),
        (["ide", "--max-file-bytes", "-1", "--token", "t"], {}, "--max-file-bytes"),
        (["gateway", "--gateway-port", "-1"], {}, "--gateway-port"),
        (["gateway", "--gateway-port", "70000"], {}, "--gateway-port"),
        (["up", "--proxy-port", "port"], {}, "--proxy-port"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_bad_numbers_are_refused_in_one_line(
    args: list[str], env: dict[str, str], flag: str
) -> None:
    done = agent_service(*args, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"agent-service {args[0]}: ")
    assert flag in lines[0]
    assert lines[0].endswith(f"(see agent-service {args[0]} --help)")


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("gateway", "--gateway-port"),
        ("orchestrator", "--orchestrator-port"),
        ("llm-proxy", "--proxy-port"),
    ],
)
def test_a_port_in_use_is_one_line_with_a_fix(command: str, flag: str, busy_port: int) -> None:
    done = agent_service(command, flag, str(busy_port), env={"AGENT_TOKEN": "t"})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("agent-service ")]
    assert line.startswith(f"agent-service {command}: ")
    assert "in use" in line
    assert line.endswith("choose another port)")


def test_demo_into_a_non_empty_directory_is_one_line() -> None:
    done = agent_service("demo", "--workspace", str(ROOT / "docs"))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("agent-service demo: ")
    assert "Traceback" not in done.stderr


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "agent_service", "schema"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    child.stdout.close()  # the reader is gone before the first byte, as `| head -0` would be
    _, err = child.communicate(timeout=30)
    assert b"Traceback" not in err
    assert child.returncode == 141


def test_model_without_an_endpoint_is_refused_honestly() -> None:
    done = agent_service("up", "--model", "gpt-4o")
    assert done.returncode == 1
    assert "--model gpt-4o needs --llm-base-url" in done.stderr
    assert "demo model answers" in done.stderr


def _server_args(command: str) -> tuple[list[str], str]:
    port = free_port()
    if command == "gateway":
        return ["gateway", "--gateway-port", str(port), "--proxy-url", "none"], (
            f"http://127.0.0.1:{port}/healthz"
        )
    if command == "orchestrator":
        return [
            "orchestrator",
            "--orchestrator-port",
            str(port),
        ], f"http://127.0.0.1:{port}/healthz"
    return ["llm-proxy", "--proxy-port", str(port)], f"http://127.0.0.1:{port}/healthz"


@pytest.mark.parametrize("command", ["gateway", "orchestrator", "llm-proxy"])
def test_each_server_stops_cleanly_on_sighup(command: str) -> None:
    args, health = _server_args(command)
    child = subprocess.Popen(
        [sys.executable, "-m", "agent_service", *args],
        cwd=ROOT,
        env={**os.environ, "AGENT_TOKEN": "t"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _wait_answering(health, child)
    child.send_signal(signal.SIGHUP)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 0, err.decode(errors="replace")


def _wait_answering(url: str, child: subprocess.Popen[bytes]) -> None:
    """Until the server answers HTTP at all: the gateway's /healthz is 503 without an
    orchestrator, but an answer means its start-up (signal handlers included) is done."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert child.poll() is None
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} never answered")


def test_up_stops_its_services_on_sighup() -> None:
    ports = {name: free_port() for name in ("gateway", "orchestrator", "proxy")}
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent_service",
            "up",
            *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))),
        ],
        cwd=ROOT,
        env={**os.environ, "AGENT_TOKEN": "up-token"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_healthy(f"http://127.0.0.1:{ports['gateway']}/healthz", timeout_s=40, process=up)
    up.send_signal(signal.SIGHUP)
    output = up.communicate(timeout=60)[0].decode(errors="replace")
    assert up.returncode == 0, output
    for port in ports.values():
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served"


def test_logs_are_json_with_iso_times_when_not_a_terminal() -> None:
    args, health = _server_args("llm-proxy")
    child = subprocess.Popen(
        [sys.executable, "-m", "agent_service", *args, "--log-level", "debug"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_healthy(health, process=child)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    entries = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert entries, err
    assert all(entry["ts"].endswith("Z") and "T" in entry["ts"] for entry in entries)
    assert {entry["service"] for entry in entries} == {"llm-proxy"}


def test_text_logs_on_request_and_the_level_filters() -> None:
    args, health = _server_args("llm-proxy")
    child = subprocess.Popen(
        [sys.executable, "-m", "agent_service", *args, "--log-format", "text"],
        cwd=ROOT,
        env={**os.environ, "AGENT_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_healthy(health, process=child)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    text = err.decode()
    assert "llm-proxy starting" not in text  # info is under the chosen level
    assert not any(line.startswith("{") for line in text.splitlines())


def test_text_log_line_shape() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import logging, sys; from service_logging import configure_logging;"
            "configure_logging('svc', stream=sys.stdout);"
            "logging.getLogger('x').info('turn ended', extra={'seq': 7, 'state': 'idle'})",
        ],
        cwd=ROOT,
        env={**os.environ, "AGENT_LOG_FORMAT": "text", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    stamp, level, rest = done.stdout.split(" ", 2)
    assert stamp.endswith("Z") and "T" in stamp
    assert level == "info"
    assert rest.strip() == "svc: turn ended  seq=7 state=idle"


def test_up_says_at_start_when_the_llm_endpoint_refuses_its_key() -> None:
    ports = {name: free_port() for name in ("gateway", "orchestrator", "proxy")}
    with FakeUpstream() as upstream:
        upstream.api_key = UPSTREAM_API_KEY
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent_service",
                "up",
                "--llm-base-url",
                upstream.base_url,
                "--model",
                FAKE_MODEL,
                "--llm-api-key",
                "not-the-key",
                *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))),
            ],
            cwd=ROOT,
            env={**os.environ, "AGENT_TOKEN": "up-token", "AGENT_LOG_LEVEL": "error"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert up.stdout is not None
        seen = []
        for line in up.stdout:  # until the warning, which follows the announcement
            seen.append(line.decode(errors="replace"))
            if "warning" in seen[-1]:
                break
        up.send_signal(signal.SIGTERM)
        output = "".join(seen) + up.communicate(timeout=60)[0].decode(errors="replace")
    assert up.returncode == 0, output
    assert "agent-service up: warning: " in output
    assert "refuses the API key" in output
    assert "not-the-key" not in output


def _orchestrator_on(port_from: dict[str, str], config: Path, *flags: str) -> int:
    """Start the orchestrator with `config`; the port it says it listens on (read from its
    log, since a probe of candidate ports can meet another test's server on a reused one)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "agent_service", "orchestrator", "--config", str(config), *flags],
        cwd=ROOT,
        env={**os.environ, **port_from},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stderr is not None
    try:
        for line in child.stderr:
            record = json.loads(line)
            if record["msg"] == "orchestrator listening":
                return int(record["port"])
        raise AssertionError(f"the orchestrator exited with {child.wait()} before listening")
    finally:
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=30)


def test_a_config_file_sets_defaults_under_env_and_flags(tmp_path: Path) -> None:
    from_file, from_env, from_flag = (free_port() for _ in range(3))
    config = tmp_path / "config.toml"
    config.write_text(f'host = "127.0.0.1"\n\n[orchestrator]\norchestrator-port = {from_file}\n')

    env = {"AGENT_ORCHESTRATOR_PORT": str(from_env)}
    flag = ("--orchestrator-port", str(from_flag))
    assert _orchestrator_on({}, config) == from_file
    assert _orchestrator_on(env, config) == from_env
    assert _orchestrator_on(env, config, *flag) == from_flag


def test_the_default_config_file_is_read_from_the_config_home(tmp_path: Path) -> None:
    home = tmp_path / "xdg"
    (home / "agent-service").mkdir(parents=True)
    (home / "agent-service" / "config.toml").write_text("[orchestrator]\nmax-steps = 0\n")
    done = agent_service("orchestrator", env={"XDG_CONFIG_HOME": str(home)})
    assert done.returncode == 2
    assert done.stderr.startswith("agent-service orchestrator: argument --max-steps: '0'")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[orchestrator]\nmax-stepz = 3\n", "[orchestrator] has no setting 'max-stepz'"),
        ("[orchestra]\nmax-steps = 3\n", "no command [orchestra]"),
        ("no-such-flag = 1\n", "no command has the setting 'no-such-flag'"),
        ("[orchestrator\n", "is not valid TOML"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_mistake(
    tmp_path: Path, text: str, complaint: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    done = agent_service("orchestrator", "--config", str(config))
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("agent-service: config file ")
    assert complaint in line


async def test_up_takes_the_services_settings_from_flags_and_its_config_file(
    tmp_path: Path,
) -> None:
    """`up` takes the orchestrator's limits, the proxy's routes and key, and passes them on."""
    routes = tmp_path / "routes.toml"
    routes.write_text('[models.mine]\nupstreams = [{ backend = "demo" }]\n')
    config = tmp_path / "config.toml"
    config.write_text(f'[up]\nmax-steps = 1\nroutes = "{routes}"\n')
    ports = {name: free_port() for name in ("gateway", "orchestrator", "proxy")}
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent_service",
            "up",
            "--config",
            str(config),
            "--model",
            "mine",
            "--proxy-key",
            "key-for-me",
            *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))),
        ],
        cwd=ROOT,
        env={**os.environ, "AGENT_TOKEN": "up-token"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{ports['gateway']}/healthz", timeout_s=40, process=up)
        listing = urllib.request.Request(
            f"http://127.0.0.1:{ports['proxy']}/v1/models",
            headers={"Authorization": "Bearer key-for-me"},
        )
        with urllib.request.urlopen(listing, timeout=10) as response:
            models = [entry["id"] for entry in json.loads(response.read())["data"]]
        client = await ProtocolClient.connect(
            f"ws://127.0.0.1:{ports['gateway']}/v1/ws", "up-token"
        )
        await client.hello()
        frames = await client.run_turn("Add logging to src/auth.js", _answer_any_tool)
        await client.close()
    finally:
        up.send_signal(signal.SIGTERM)
        output = up.communicate(timeout=60)[0].decode(errors="replace")
    assert up.returncode == 0, output
    assert models == ["mine"]
    errors = [frame for frame in frames if frame["type"] == "error"]
    assert [error["code"] for error in errors] == ["max_steps"]
    assert "key-for-me" not in output


async def _answer_any_tool(frame: dict[str, object]) -> dict[str, object]:
    return {"type": "tool_result", "call_id": frame["call_id"], "ok": True, "output": {}}
