"""Text helpers: lines as a unified diff counts them, and validation errors in one line."""

from __future__ import annotations

from pydantic import ValidationError


def split_lines(text: str) -> list[str]:
    """Lines as git sees them: cut after each '\\n' only, ends kept, so '\\r' stays in the text."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def validation_problems(exc: ValidationError, whole: str, most: int | None = None) -> str:
    """A pydantic error in one line: `where: what` for each of the first `most` problems (all
    when None), `whole` naming the place when the problem is the value itself."""
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or whole}: {err['msg']}"
        for err in exc.errors()[:most]
    )
