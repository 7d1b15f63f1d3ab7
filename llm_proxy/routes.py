"""Which backends answer which model name, in fallback order: a routes file, or the CLI flags.

A routes file is TOML. Each table under `[models]` is a model name clients may
request, with its `upstreams` tried in order (the next one only when the one
before failed before its first byte):

    [models.smart]
    upstreams = [
      { base_url = "https://api.openai.com/v1", api_key_env = "OPENAI_API_KEY", model = "gpt-4.1" },
      { base_url = "http://127.0.0.1:11434/v1", model = "qwen2.5-coder" },
      { backend = "demo" },
    ]

    [models.demo]
    upstreams = [{ backend = "demo" }]

    [models.replayed]
    upstreams = [{ backend = "replay", db = "t.db", session = "s_0123abcd" }]

The table `[models."*"]` catches every model name no other table names; an
"openai" entry there without `model` forwards the caller's model name as it came.

An upstream entry has `backend` ("openai", the default, for any OpenAI-compatible
server, "demo" for the built-in demo model, or "replay" for a recorded session's
model responses); an "openai" entry has `base_url`, optionally `model` (the
upstream's name for it; default: the table's name) and `api_key_env` (the
environment variable holding its key; keys never live in the file), and
`stream = false` for an upstream that cannot stream tool calls (llama-cpp-python's
function-calling handler fails a streamed request with tools after its 200): the
proxy asks it without streaming and streams the whole answer back in OpenAI's
chunks. A model table may also give the model's `context_window` in tokens,
listed in /v1/models for the orchestrator's context budget:

    [models.gemma]
    context_window = 8192
    upstreams = [{ base_url = "http://127.0.0.1:8080/v1", model = "gemma", stream = false }]

A "replay"
entry has `db` (a transcript database, relative to the routes file's directory)
and `session` (the recorded session's id).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_proxy.backend import Backend
from llm_proxy.demo import DEMO_MODEL, demo_reply
from llm_proxy.errors import ReplaySourceError, RoutesError
from llm_proxy.function_backend import FunctionBackend
from llm_proxy.replay_backend import ReplayBackend
from llm_proxy.settings import ProxySettings
from llm_proxy.transcript_reader import RecordedSession, read_recorded_session
from llm_proxy.upstream import UpstreamBackend

_OPENAI_KEYS = frozenset({"backend", "base_url", "model", "api_key_env", "stream"})
_MODEL_KEYS = frozenset({"upstreams", "context_window"})
_REPLAY_KEYS = frozenset({"backend", "db", "session"})
REPLAY_MODEL = "replay"
WILDCARD = "*"


@dataclass(frozen=True)
class UpstreamTarget:
    """An OpenAI-compatible server and the model to ask it for (None: the caller's name)."""

    base_url: str
    model: str | None
    api_key: str | None = field(default=None, repr=False)
    streams: bool = True


@dataclass(frozen=True)
class DemoTarget:
    """The built-in offline demo model."""


@dataclass(frozen=True)
class ReplayTarget:
    """A recorded session's model responses, read when the routes are loaded."""

    session: RecordedSession = field(repr=False)


Target = UpstreamTarget | DemoTarget | ReplayTarget
Routes = dict[str, tuple[Target, ...]]


def default_routes(base_url: str | None, api_key: str | None, model: str | None) -> Routes:
    """The routes without a file: `model` at `base_url`, or every name the caller asks for
    there when no model is given; only the demo without a base URL."""
    if not base_url:
        return {DEMO_MODEL: (DemoTarget(),)}
    if not model:
        return {WILDCARD: (UpstreamTarget(base_url, None, api_key),)}
    return {model: (UpstreamTarget(base_url, model, api_key),)}


def replay_routes(db: Path, session_id: str | None, model: str | None) -> Routes:
    """The routes of --replay: the recorded session, served under `model`, else the model name
    it recorded, else `replay` (a session that used its endpoint's default model records none)."""
    if not session_id:
        raise RoutesError(
            "--replay needs --replay-session ID: the recorded session to serve "
            f"(`agent-service transcripts list --db {db}` lists them)"
        )
    session = read_recorded_session(db, session_id)
    return {model or session.model or REPLAY_MODEL: (ReplayTarget(session),)}


def load_routes(path: Path, environ: Mapping[str, str] = os.environ) -> Routes:
    """Read a routes file; every problem is a RoutesError naming the entry at fault."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RoutesError(f"cannot read routes file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RoutesError(f"routes file {path} is not valid TOML: {exc}") from None
    unknown = set(document) - {"models"}
    if unknown:
        raise RoutesError(f"{path}: unknown top-level keys {sorted(unknown)}; expected [models]")
    models = document.get("models")
    if not isinstance(models, dict) or not models:
        raise RoutesError(f"{path}: no [models.<name>] tables")
    return {name: _targets(path, name, entry, environ) for name, entry in models.items()}


def build_backends(routes: Routes, settings: ProxySettings) -> dict[str, tuple[Backend, ...]]:
    """A backend for every target of every route, the demo model shared by all."""
    demo = FunctionBackend(demo_reply, DEMO_MODEL, settings.demo_delay)

    def backend(target: Target) -> Backend:
        if isinstance(target, DemoTarget):
            return demo
        if isinstance(target, ReplayTarget):
            return ReplayBackend(target.session)
        return UpstreamBackend(
            target.base_url, target.api_key, target.model, settings, streams=target.streams
        )

    return {name: tuple(backend(target) for target in targets) for name, targets in routes.items()}


def context_windows(path: Path) -> dict[str, int]:
    """The `context_window` of each model table of a routes file `load_routes` accepted."""
    models = tomllib.loads(path.read_text(encoding="utf-8"))["models"]
    return {
        name: entry["context_window"] for name, entry in models.items() if "context_window" in entry
    }


def _targets(path: Path, name: str, entry: Any, environ: Mapping[str, str]) -> tuple[Target, ...]:
    where = f"{path}: [models.{name}]"
    if not isinstance(entry, dict) or "upstreams" not in entry or set(entry) - _MODEL_KEYS:
        raise RoutesError(f"{where} must hold `upstreams` and optionally `context_window`")
    window = entry.get("context_window", 1)
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        raise RoutesError(f"{where}: context_window must be a positive number of tokens")
    upstreams = entry["upstreams"]
    if not isinstance(upstreams, list) or not upstreams:
        raise RoutesError(f"{where}: `upstreams` must be a non-empty list of tables")
    return tuple(
        _target(f"{where} upstream {index + 1}", path, name, upstream, environ)
        for index, upstream in enumerate(upstreams)
    )


def _target(where: str, path: Path, name: str, upstream: Any, environ: Mapping[str, str]) -> Target:
    if not isinstance(upstream, dict):
        raise RoutesError(f'{where} must be a table like {{ base_url = "..." }}')
    backend = upstream.get("backend", "openai")
    if backend == "demo":
        if set(upstream) != {"backend"}:
            raise RoutesError(f"{where}: a demo entry takes no other keys")
        return DemoTarget()
    if backend == "replay":
        return _replay_target(where, path, upstream)
    if backend != "openai":
        raise RoutesError(f'{where}: backend must be "openai", "demo" or "replay", not {backend!r}')
    unknown = set(upstream) - _OPENAI_KEYS
    if unknown:
        raise RoutesError(f"{where}: unknown keys {sorted(unknown)}")
    base_url = upstream.get("base_url")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise RoutesError(f"{where}: base_url must be an http:// or https:// URL")
    model = upstream.get("model", None if name == WILDCARD else name)
    if model is not None and (not isinstance(model, str) or not model):
        raise RoutesError(f"{where}: model must be a non-empty string")
    streams = upstream.get("stream", True)
    if not isinstance(streams, bool):
        raise RoutesError(f"{where}: stream must be true or false")
    key_env = upstream.get("api_key_env")
    if key_env is None:
        return UpstreamTarget(base_url, model, streams=streams)
    if not isinstance(key_env, str):
        raise RoutesError(f"{where}: api_key_env must name an environment variable")
    api_key = environ.get(key_env)
    if not api_key:
        raise RoutesError(f"{where}: environment variable {key_env} (its API key) is not set")
    return UpstreamTarget(base_url, model, api_key, streams)


def _replay_target(where: str, path: Path, upstream: dict[str, Any]) -> ReplayTarget:
    unknown = set(upstream) - _REPLAY_KEYS
    if unknown:
        raise RoutesError(f"{where}: unknown keys {sorted(unknown)}")
    db, session_id = upstream.get("db"), upstream.get("session")
    if not isinstance(db, str) or not db or not isinstance(session_id, str) or not session_id:
        raise RoutesError(f"{where}: a replay entry needs `db` and `session`, both strings")
    try:
        return ReplayTarget(read_recorded_session(path.parent / db, session_id))
    except ReplaySourceError as exc:
        raise RoutesError(f"{where}: {exc}") from None
