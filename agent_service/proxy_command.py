"""Run the LLM proxy: an OpenAI-compatible /v1/chat/completions in front of real upstreams.

Without --routes and --llm-base-url the only model is `demo`, the built-in
offline demo model. With --llm-base-url, the model --model is served by that
OpenAI-compatible server. With --routes FILE (TOML, see docs/llm-proxy.md),
each model name maps to upstreams tried in order when one fails before its
first byte. Retries (exponential backoff with jitter, honouring Retry-After)
happen here and only before the first byte: this is the stack's one retry loop.
With --replay DB --replay-session ID, the one model is a recorded session,
answering each request as it was recorded (a request it never made is refused).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from pathlib import Path

from agent_service.failures import OperatorError, from_os_error, report
from agent_service.options import (
    DEFAULT_PROXY_PORT,
    add_host,
    add_llm_upstream,
    add_number,
    add_port,
    add_replay_source,
    env,
)
from llm_proxy import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DEMO_DELAY_MS,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_RETRIES,
    CrossSitePolicy,
    ProxyError,
    ProxyKeys,
    ProxySettings,
    ReplayTarget,
    Routes,
    RoutesError,
    context_windows,
    create_app,
    default_routes,
    listening_socket,
    load_routes,
    read_key_file,
    replay_routes,
)
from service_logging import configure_logging

logger = logging.getLogger("llm_proxy")


def configure(parser: argparse.ArgumentParser) -> None:
    """The llm-proxy flags, each with its environment variable."""
    add_host(parser)
    add_port(parser, "proxy", DEFAULT_PROXY_PORT)
    add_llm_upstream(
        parser,
        unset_means="the built-in demo model",
        model_unset_means="with --llm-base-url, every model name a caller asks for is forwarded",
    )
    env_keys = env("AGENT_PROXY_KEY")
    parser.add_argument(
        "--proxy-key",
        action="append",
        default=[key.strip() for key in env_keys.split(",")] if env_keys else [],
        metavar="KEY",
        help="a key callers must send as 'Authorization: Bearer KEY'; repeat for several "
        "(env AGENT_PROXY_KEY, comma-separated; no key at all: the proxy is open)",
    )
    parser.add_argument(
        "--proxy-key-file",
        type=Path,
        default=env("AGENT_PROXY_KEY_FILE"),
        metavar="FILE",
        help="file of accepted proxy keys, one a line, # for comments (env AGENT_PROXY_KEY_FILE)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=_listed(env("AGENT_PROXY_ALLOWED_HOSTS")),
        metavar="NAME",
        help="a host name callers reach the proxy by, besides IP addresses and localhost; "
        "repeatable (env AGENT_PROXY_ALLOWED_HOSTS, comma-separated). Any other Host header "
        "is refused: it is how DNS rebinding would reach the proxy",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=_listed(env("AGENT_PROXY_ALLOWED_ORIGINS")),
        metavar="ORIGIN",
        help="a browser Origin allowed to call the proxy; repeatable "
        "(env AGENT_PROXY_ALLOWED_ORIGINS, comma-separated; default: none, so web pages are "
        "refused)",
    )
    add_replay_source(parser)
    add_upstream_policy(parser)
    add_number(
        parser,
        "demo-delay-ms",
        DEFAULT_DEMO_DELAY_MS,
        "milliseconds before each word the demo model streams",
        minimum=0,
        var="AGENT_DEMO_DELAY_MS",
    )


def add_upstream_policy(parser: argparse.ArgumentParser) -> None:
    """Where each model goes and how upstreams are waited for and retried; `agent-service up`
    takes and passes these on too."""
    parser.add_argument(
        "--routes",
        type=Path,
        default=env("AGENT_PROXY_ROUTES"),
        metavar="FILE",
        help="TOML file mapping model names to upstreams with fallbacks "
        "(env AGENT_PROXY_ROUTES; unset: --llm-base-url and --model, or the demo model)",
    )
    add_number(
        parser,
        "connect-timeout",
        DEFAULT_CONNECT_TIMEOUT,
        "seconds to connect to an upstream and get its first chunk",
        var="AGENT_PROXY_CONNECT_TIMEOUT",
    )
    add_number(
        parser,
        "idle-timeout",
        DEFAULT_IDLE_TIMEOUT,
        "seconds of silence between two chunks before a stream is ended with an error",
        var="AGENT_PROXY_IDLE_TIMEOUT",
    )
    add_number(
        parser,
        "max-retries",
        DEFAULT_MAX_RETRIES,
        "retries per upstream on connection failure, 429 or 5xx, before the first byte only",
        minimum=0,
        var="AGENT_PROXY_MAX_RETRIES",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; exit 0 then, 2 on a configuration error."""
    configure_logging("llm-proxy")
    try:
        routes = _routes(args)
        keys = ProxyKeys(_keys(args))
    except (ProxyError, OSError) as exc:
        logger.error("cannot start", extra={"reason": str(exc)})
        return report("llm-proxy", OperatorError(str(exc), "check --routes and the key flags"))
    settings = ProxySettings(
        connect_timeout=args.connect_timeout,
        idle_timeout=args.idle_timeout,
        max_retries=args.max_retries,
        demo_delay=args.demo_delay_ms / 1000,
    )
    if not keys.required and not _is_loopback(args.host):
        logger.warning(
            "no proxy key configured on a non-loopback interface: anyone who reaches it may "
            "use the upstreams",
            extra={"host": args.host},
        )
    try:
        listener = listening_socket(args.host, args.proxy_port)
    except OSError as exc:
        logger.error(
            "cannot listen", extra={"host": args.host, "port": args.proxy_port, "reason": str(exc)}
        )
        failure = from_os_error(exc)
        failure.what = f"cannot listen on {args.host}:{args.proxy_port}: {failure.what}"
        return report("llm-proxy", failure)
    cross_site = CrossSitePolicy([*args.allowed_host, args.host], args.allowed_origin)
    app = create_app(routes, keys, settings, cross_site, _windows(args, routes))
    logger.info(
        "llm-proxy starting",
        extra={
            "host": args.host,
            "port": args.proxy_port,
            "models": sorted(routes),
            "keys_required": keys.required,
        },
    )
    app.run(
        sock=listener,
        single_process=True,
        access_log=False,
        motd=False,
    )
    logger.info("llm-proxy stopped")
    return 0


def _routes(args: argparse.Namespace) -> Routes:
    if args.replay is not None:
        if args.routes is not None or args.llm_base_url:
            raise RoutesError(
                "--replay serves only the recording: drop --routes and --llm-base-url"
            )
        return replay_routes(args.replay, args.replay_session, args.model)
    if args.routes is None:
        return default_routes(args.llm_base_url, args.llm_api_key, args.model)
    if args.llm_base_url:
        logger.warning("--routes is set, so --llm-base-url and --model are ignored")
    return load_routes(args.routes)


def _windows(args: argparse.Namespace, routes: Routes) -> dict[str, int]:
    """The models' context windows: from the routes file, or the replayed session's own, so
    that its re-run is sized exactly as it was."""
    if args.replay is not None:
        return {
            name: target.session.context_window
            for name, (target, *_) in routes.items()
            if isinstance(target, ReplayTarget) and target.session.context_window
        }
    return context_windows(args.routes) if args.routes is not None else {}


def _keys(args: argparse.Namespace) -> list[str]:
    keys = [key for key in args.proxy_key if key]
    if args.proxy_key_file is not None:
        keys.extend(read_key_file(args.proxy_key_file))
    return keys


def _listed(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
