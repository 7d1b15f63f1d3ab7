"""Print the JSON Schema of IDE protocol v1 (both directions), for generating client models."""

from __future__ import annotations

import argparse
import json

from wire import json_schema


def configure(parser: argparse.ArgumentParser) -> None:
    """No flags: the schema is a property of the code."""


def run(args: argparse.Namespace) -> int:
    """Write the schema to stdout."""
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0
