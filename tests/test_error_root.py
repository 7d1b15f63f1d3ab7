"""Every error the project defines has one root and a code a caller can act on."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from wire import AgentServiceError

PACKAGES = (
    "acp_agent",
    "agent_service",
    "benchmarks",
    "gateway",
    "htmlpage",
    "ide_client",
    "llm_proxy",
    "orchestrator",
    "service_health",
    "service_logging",
    "transcripts",
    "wire",
)


def _defined_exceptions() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for module_info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            if module_info.name.endswith("__main__"):
                continue
            module = importlib.import_module(module_info.name)
            for _, value in inspect.getmembers(module, inspect.isclass):
                if issubclass(value, BaseException) and value.__module__ == module.__name__:
                    found.append(value)
    return found


EXCEPTIONS = _defined_exceptions()


def test_the_project_defines_errors_at_all() -> None:
    assert len(EXCEPTIONS) > 20


@pytest.mark.parametrize("error", EXCEPTIONS, ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_each_error_is_under_the_one_root_with_a_code(error: type[BaseException]) -> None:
    assert issubclass(error, AgentServiceError)
    assert isinstance(error.code, str) or "code" in getattr(error, "__annotations__", {})
