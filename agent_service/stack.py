"""The three services as child processes on one machine: start in order, watch, stop cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import IO

from service_health import ServiceDidNotStart, wait_healthy
from wire import AgentServiceError


@dataclass(frozen=True, slots=True)
class StackConfig:
    """Ports, secrets and the model endpoint of one stack.

    `proxy_key` is the key the llm-proxy requires and the orchestrator presents;
    it goes to those two children in their environment, never on a command line.
    """

    host: str
    gateway_port: int
    orchestrator_port: int
    proxy_port: int
    token: str
    internal_token: str
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    model: str | None = None
    proxy_key: str | None = None
    extra_args: dict[str, list[str]] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        """Where IDEs connect."""
        return f"ws://{self.host}:{self.gateway_port}/v1/ws"


SERVICES = ("llm-proxy", "orchestrator", "gateway")


@dataclass(frozen=True, slots=True)
class ClusterShape:
    """Where the orchestrators and gateways of a cluster listen, and their broker.

    `orchestrator_args` go to every orchestrator (the lease's and the log's settings).
    """

    broker: str
    orchestrator_ports: tuple[int, ...]
    gateway_ports: tuple[int, ...]
    orchestrator_args: tuple[str, ...] = ()


class StackError(AgentServiceError):
    """A service did not start or died."""

    code = "stack_failed"


class ServiceStack:
    """llm-proxy, orchestrator and gateway, each its own process."""

    def __init__(self, config: StackConfig, output: IO[bytes] | None = None) -> None:
        self.config = config
        self._output = output
        self._children: list[tuple[str, subprocess.Popen[bytes]]] = []
        # each running child's flags and health URL, by pid, for `restart`
        self._launch: dict[int, tuple[list[str], str]] = {}

    def start(self, timeout_s: float = 30.0, services: tuple[str, ...] = SERVICES) -> None:
        """Start `services` in dependency order; each must answer /healthz."""
        c = self.config
        proxy_args = ["--host", c.host, "--proxy-port", str(c.proxy_port)]
        if c.llm_base_url:
            proxy_args += ["--llm-base-url", c.llm_base_url]
        if c.model:
            proxy_args += ["--model", c.model]
        orchestrator_args = [
            "--host",
            c.host,
            "--orchestrator-port",
            str(c.orchestrator_port),
            "--llm-base-url",
            f"http://{c.host}:{c.proxy_port}/v1",
        ]
        gateway_args = [
            "--host",
            c.host,
            "--gateway-port",
            str(c.gateway_port),
            "--orchestrator-url",
            f"ws://{c.host}:{c.orchestrator_port}/v1/link",
            "--proxy-url",
            f"http://{c.host}:{c.proxy_port}",
        ]
        plan = [
            ("llm-proxy", proxy_args, c.proxy_port),
            ("orchestrator", orchestrator_args, c.orchestrator_port),
            ("gateway", gateway_args, c.gateway_port),
        ]
        try:
            for name, args, port in plan:
                if name in services:
                    self.launch(name, args, port, timeout_s)
        except BaseException:
            self.stop()
            raise

    def start_cluster(self, shape: ClusterShape, timeout_s: float = 60.0) -> None:
        """Start the llm-proxy, then every orchestrator on the broker at once, then every
        gateway at once; each must answer /healthz (the gateways once an orchestrator
        holds a lease)."""
        c = self.config
        on_broker = ["--host", c.host, "--broker", shape.broker]
        model = ["--model", c.model] if c.model else []
        proxy = f"http://{c.host}:{c.proxy_port}"
        try:
            self.start(timeout_s, services=("llm-proxy",))
            self.launch_all(
                "orchestrator",
                {
                    port: [
                        *on_broker,
                        *("--orchestrator-port", str(port), *shape.orchestrator_args),
                        *("--llm-base-url", f"{proxy}/v1", *model),
                    ]
                    for port in shape.orchestrator_ports
                },
                timeout_s,
            )
            self.launch_all(
                "gateway",
                {
                    port: [*on_broker, "--gateway-port", str(port), "--proxy-url", proxy]
                    for port in shape.gateway_ports
                },
                timeout_s,
            )
        except BaseException:
            self.stop()
            raise

    def launch(self, name: str, args: list[str], port: int, timeout_s: float = 30.0) -> None:
        """Start one more `agent-service <name>` with `args` (and the config's extra args for
        it) and wait until it answers /healthz on `port`; `stop` stops it with the rest."""
        self.launch_all(name, {port: args}, timeout_s)

    def launch_all(self, name: str, args_by_port: dict[int, list[str]], timeout_s: float) -> None:
        """Start one `agent-service <name>` per port at once (each with its `args` and the
        config's extra args for the service), then wait until every one answers /healthz."""
        c = self.config
        started = []
        for port, args in args_by_port.items():
            launch = (args + c.extra_args.get(name, []), f"http://{c.host}:{port}/healthz")
            process = self._spawn(name, launch[0])
            self._launch[process.pid] = launch
            started.append((launch[1], process))
        for health_url, process in started:
            self._wait_healthy(name, health_url, timeout_s, process)

    def restart(self, name: str, timeout_s: float = 30.0) -> int:
        """SIGTERM every process of one service, start each again with the same flags; the
        first non-zero exit code among them, else 0."""
        indexes = [i for i, (child, _) in enumerate(self._children) if child == name]
        stopped = [self._children[i][1] for i in indexes]
        for process in stopped:
            process.send_signal(signal.SIGTERM)
        codes = [int(process.wait(timeout_s)) for process in stopped]
        restarted = []
        for index, process in zip(indexes, stopped, strict=True):
            launch = self._launch.pop(process.pid)
            again = self._spawn(name, launch[0])
            self._launch[again.pid] = launch
            self._children[index] = self._children.pop()
            restarted.append((launch[1], again))
        for health_url, again in restarted:
            self._wait_healthy(name, health_url, timeout_s, again)
        return next((code for code in codes if code), 0)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "AGENT_TOKEN": self.config.token,
            "AGENT_INTERNAL_TOKEN": self.config.internal_token,
        }
        env.update(self._secrets_for(name))
        process = subprocess.Popen(
            [sys.executable, "-m", "agent_service", name, *args],
            env=env,
            stdout=self._output,
            stderr=self._output,
            start_new_session=True,
        )
        self._children.append((name, process))
        return process

    def _secrets_for(self, name: str) -> dict[str, str]:
        """The model-side keys one service gets: the proxy the upstream's key and its own,
        the orchestrator only the proxy's."""
        c = self.config
        if name == "llm-proxy":
            keys = {"AGENT_PROXY_KEY": c.proxy_key} if c.proxy_key else {}
            return keys | ({"AGENT_LLM_API_KEY": c.llm_api_key} if c.llm_api_key else {})
        if name == "orchestrator" and c.proxy_key:
            return {"AGENT_LLM_API_KEY": c.proxy_key}
        return {}

    def _wait_healthy(
        self,
        name: str,
        url: str,
        timeout_s: float,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        try:
            wait_healthy(url, timeout_s, process or self._children[-1][1], name)
        except ServiceDidNotStart as exc:
            raise StackError(str(exc)) from None

    def health_urls(self, name: str) -> dict[int, str]:
        """The /healthz URL of every running process of one service, by pid (a cluster runs
        several orchestrators and gateways)."""
        return {
            process.pid: self._launch[process.pid][1]
            for child, process in self._children
            if child == name
        }

    def failed_service(self) -> str | None:
        """The name of a service that exited, if one did."""
        for name, process in self._children:
            if process.poll() is not None:
                return name
        return None

    def run_until_stopped(self, stop: threading.Event, command: str) -> int:
        """Watch the services until `stop` is set or one exits, then stop them all;
        the command's exit code (1 when a service failed or exited uncleanly)."""
        failed = None
        while not stop.wait(0.5):
            failed = self.failed_service()
            if failed:
                print(
                    f"agent-service {command}: {failed} exited; stopping the others",
                    file=sys.stderr,
                )
                break
        codes = self.stop()
        unclean = {name: code for name, code in codes.items() if code != 0}
        if unclean:
            print(f"agent-service {command}: unclean exits {unclean}", file=sys.stderr)
        return 1 if failed or unclean else 0

    def stop(self, timeout_s: float = 20.0) -> dict[str, int]:
        """SIGTERM in reverse order, wait, SIGKILL stragglers; return the exit codes."""
        codes: dict[str, int] = {}
        for name, process in reversed(self._children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            codes[name] = int(process.returncode)
        self._children.clear()
        return codes
