"""Routes files and flags: which backends answer which model, and every mistake named."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_proxy.errors import RoutesError
from llm_proxy.routes import (
    WILDCARD,
    DemoTarget,
    UpstreamTarget,
    context_windows,
    default_routes,
    load_routes,
)
from tests.support.fake_credentials import UPSTREAM_API_KEY

EXAMPLE = """
[models.smart]
upstreams = [
  { base_url = "https://api.example.com/v1", api_key_env = "EXAMPLE_KEY", model = "big-model" },
  { base_url = "http://127.0.0.1:11434/v1" },
  { backend = "demo" },
]

[models.demo]
upstreams = [{ backend = "demo" }]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(text)
    return path


def test_routes_file_maps_each_model_to_its_upstreams_in_order(tmp_path: Path) -> None:
    routes = load_routes(write(tmp_path, EXAMPLE), {"EXAMPLE_KEY": UPSTREAM_API_KEY})

    assert list(routes) == ["smart", "demo"]
    assert routes["smart"] == (
        UpstreamTarget("https://api.example.com/v1", "big-model", UPSTREAM_API_KEY),
        UpstreamTarget("http://127.0.0.1:11434/v1", "smart"),
        DemoTarget(),
    )
    assert routes["demo"] == (DemoTarget(),)
    assert UPSTREAM_API_KEY not in repr(routes)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (EXAMPLE, "EXAMPLE_KEY"),
        ("[models.a]\nupstreams = []\n", "non-empty list"),
        ('[models.a]\nupstreams = [{ base_url = "ftp://x" }]\n', "base_url"),
        ('[models.a]\nupstreams = [{ backend = "magic" }]\n', "magic"),
        ('[models.a]\nupstreams = [{ backend = "demo", model = "x" }]\n', "no other keys"),
        ('[models.a]\nupstreams = [{ base_url = "http://x", api_key = "sk" }]\n', "api_key"),
        ("[models.a]\nfallbacks = []\n", "upstreams"),
        ('[models.a]\ncontext_window = 0\nupstreams = [{ backend = "demo" }]\n', "positive"),
        ('[models.a]\nupstreams = [{ base_url = "http://x", stream = "no" }]\n', "stream"),
        ("[model.a]\n", "[models]"),
        ("models = 3\n", "no [models"),
        ("[models.a\n", "not valid TOML"),
    ],
)
def test_routes_file_is_refused_with_the_entry_at_fault_when_it_is_wrong(
    tmp_path: Path, text: str, complaint: str
) -> None:
    with pytest.raises(RoutesError) as raised:
        load_routes(write(tmp_path, text), {})

    assert complaint in str(raised.value)


def test_routes_file_gives_a_model_its_context_window_and_a_non_streaming_upstream(
    tmp_path: Path,
) -> None:
    text = '[models.g]\ncontext_window = 2048\nupstreams = [{ base_url = "http://x/v1", stream = false }]\n'
    path = write(tmp_path, text)

    assert load_routes(path, {})["g"] == (UpstreamTarget("http://x/v1", "g", streams=False),)
    assert context_windows(path) == {"g": 2048}


def test_flags_route_only_the_demo_model_when_no_upstream_is_given() -> None:
    assert default_routes(None, None, "ignored") == {"demo": (DemoTarget(),)}


def test_flags_route_the_named_model_to_the_upstream_when_one_is_given() -> None:
    routes = default_routes("http://127.0.0.1:8000/v1", "sk-key", "llama")

    assert routes == {"llama": (UpstreamTarget("http://127.0.0.1:8000/v1", "llama", "sk-key"),)}


def test_flags_without_a_model_forward_every_name_to_the_upstream() -> None:
    routes = default_routes("http://127.0.0.1:8000/v1", None, None)
    assert routes == {WILDCARD: (UpstreamTarget("http://127.0.0.1:8000/v1", None, None),)}


def test_a_wildcard_table_without_model_forwards_the_callers_name(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text('[models."*"]\nupstreams = [{ base_url = "http://127.0.0.1:1/v1" }]\n')
    assert load_routes(path) == {WILDCARD: (UpstreamTarget("http://127.0.0.1:1/v1", None),)}
