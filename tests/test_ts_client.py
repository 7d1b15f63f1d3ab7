"""The schema as an IDE team outside Python uses it: quicktype generates TypeScript and Dart
from docs/protocol.schema.json unmodified, the TypeScript compiles with `tsc --strict`, and a
Node client written only against the generated types completes the demo turn on the stack.

`make test` installs the npm packages (`npm ci` in clients/typescript) before pytest runs.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ide_client.sample import create_sample_workspace
from tests.support.procs import ServiceProcess, distinct_ports, free_run, running
from tests.support.protocol_schema import schema_document
from tests.support.stack import (
    CLUSTER,
    CLUSTER_GATEWAYS,
    CLUSTER_ORCHESTRATORS,
    CLUSTER_STARTUP_S,
)
from wire.schema import CLIENT_MESSAGES, SERVER_MESSAGES, definition_name

CLIENT_DIR = Path(__file__).resolve().parents[1] / "clients" / "typescript"
MESSAGES = [definition_name(model) for model in (*CLIENT_MESSAGES, *SERVER_MESSAGES)]


def npm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    assert (CLIENT_DIR / "node_modules" / ".bin" / "quicktype").exists(), (
        "npm packages missing: run `npm ci` in clients/typescript (make test does)"
    )
    done = subprocess.run(
        ["npm", "run", "--silent", *args],
        cwd=CLIENT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"npm run {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


TOKEN = "ts-client-token-0123456789"


@contextlib.contextmanager
def agent_service_up(log_dir: Path) -> Iterator[str]:
    """`agent-service up` with the offline demo model on free ports (`agent-service cluster`,
    2 gateways and 3 orchestrators, with AGENT_TEST_TOPOLOGY=cluster); yields the gateway URL."""
    gateway = free_run(CLUSTER_GATEWAYS)
    orchestrator = free_run(CLUSTER_ORCHESTRATORS, range(gateway, gateway + CLUSTER_GATEWAYS))
    taken = {
        *range(gateway, gateway + CLUSTER_GATEWAYS),
        *range(orchestrator, orchestrator + CLUSTER_ORCHESTRATORS),
    }
    proxy, nats = distinct_ports(2, avoid=taken)
    ports = {"--gateway-port": gateway, "--orchestrator-port": orchestrator, "--proxy-port": proxy}
    command = ["up"]
    if CLUSTER:
        command = [
            *("cluster", "--nats-port", str(nats), "--store", str(log_dir / "nats")),
            *("--gateways", str(CLUSTER_GATEWAYS), "--orchestrators", str(CLUSTER_ORCHESTRATORS)),
        ]
    up = ServiceProcess(
        [*command, *(item for flag, port in ports.items() for item in (flag, str(port)))],
        health_url=f"http://127.0.0.1:{gateway}/healthz",
        log_path=log_dir / "up.log",
        env={"AGENT_TOKEN": TOKEN},
        health_timeout=CLUSTER_STARTUP_S if CLUSTER else 60,
    )
    with running(up):
        yield f"ws://127.0.0.1:{gateway}/v1/ws"


@pytest.fixture(scope="module")
def built() -> Path:
    """Generate TypeScript and Dart from the schema, then compile the TypeScript strictly."""
    npm("generate")
    npm("build")
    return CLIENT_DIR


def dart_fields(dart: str) -> dict[str, set[str]]:
    """Each generated Dart class and the names of its fields."""
    classes: dict[str, set[str]] = {}
    for match in re.finditer(r"^class (\w+) \{\n(.*?)^\}", dart, re.S | re.M):
        name, body = match.groups()
        classes[name] = set(re.findall(r"^\s+final [\w<>?, ]+? (\w+);", body, re.M))
    return classes


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def test_quicktype_makes_one_typescript_interface_per_message(built: Path) -> None:
    typescript = (built / "generated" / "protocol.ts").read_text()
    interfaces = set(re.findall(r"^export interface (\w+) \{", typescript, re.M))
    definitions = schema_document()["$defs"]
    objects = {name for name, schema in definitions.items() if schema.get("type") == "object"}
    assert interfaces == objects
    named_by: dict[str, str] = {}
    for name in MESSAGES:
        kind = definitions[name]["properties"]["type"]["const"]
        # `files_reverted` is a frame of each direction: both share the client frame's alias
        alias = named_by.setdefault(kind, name)
        assert f'export type {alias}Type = "{kind}";' in typescript
    assert re.search(r'^export type ToolName = "read_file" \| ', typescript, re.M)


def test_quicktype_makes_one_dart_class_per_message_with_its_own_fields(built: Path) -> None:
    classes = dart_fields((built / "generated" / "protocol.dart").read_text())
    definitions = schema_document()["$defs"]
    for name in MESSAGES:
        assert classes.get(name) == {camel(prop) for prop in definitions[name]["properties"]}, name
    assert "ReadFileArguments" in classes and "ReadFileOutput" in classes
    assert "Error" not in classes


def test_node_client_on_generated_types_completes_the_demo_turn(
    built: Path, tmp_path: Path
) -> None:
    workspace = create_sample_workspace(tmp_path / "ws")
    before = (workspace / "src" / "auth.js").read_text()
    with agent_service_up(tmp_path) as url:
        where = ["--url", url, "--token", TOKEN, "--workspace", str(workspace)]
        ran = subprocess.run(
            ["node", "build/src/demo.js", *where, "--prompt", "Add logging to src/auth.js"],
            cwd=built,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = [json.loads(line) for line in ran.stdout.splitlines()]
    assert lines[0]["frame"] == "session"
    assert lines[0]["tools"] == ["read_file", "write_file", "git.diff", "apply_patch"]
    summary = lines[-1]
    assert summary["tools_run"] == ["read_file", "apply_patch", "git.diff"]
    assert summary["final_state"] == "done" and summary["answer"]
    assert not [line for line in lines if line.get("frame") in ("error", "unknown")]
    after = (workspace / "src" / "auth.js").read_text()
    assert after != before and "console" in after
