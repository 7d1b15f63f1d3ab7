"""The LLM proxy: an OpenAI-compatible chat completions endpoint in front of real upstreams.

`app` serves HTTP; `failover` is the stack's only retry loop; `backend` is the
one interface that `upstream` (any OpenAI-compatible server),
`function_backend` (a model that is a function of the conversation: the
offline demo model of `demo` and `demo_edit`) and `replay_backend` implement; `routes` maps model names to backends. See docs/llm-proxy.md.
"""

from llm_proxy.app import create_app
from llm_proxy.chunks import DONE_FRAME, SSE_CONTENT_TYPE, ChunkBuilder, sse_frame, usage_counts
from llm_proxy.cross_site import CrossSitePolicy
from llm_proxy.errors import ProxyError, RoutesError
from llm_proxy.keys import ProxyKeys, read_key_file
from llm_proxy.listener import listening_socket
from llm_proxy.routes import (
    ReplayTarget,
    Routes,
    context_windows,
    default_routes,
    load_routes,
    replay_routes,
)
from llm_proxy.settings import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DEMO_DELAY_MS,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_RETRIES,
    ProxySettings,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_DEMO_DELAY_MS",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_RETRIES",
    "DONE_FRAME",
    "SSE_CONTENT_TYPE",
    "ChunkBuilder",
    "CrossSitePolicy",
    "ProxyError",
    "ProxyKeys",
    "ProxySettings",
    "ReplayTarget",
    "Routes",
    "RoutesError",
    "context_windows",
    "create_app",
    "default_routes",
    "listening_socket",
    "load_routes",
    "read_key_file",
    "replay_routes",
    "sse_frame",
    "usage_counts",
]
