"""How a command reports an operator's mistake: one line, `agent-service <command>: <what> (<fix>)`.

Tracebacks are for bugs. A port in use, a missing file or a bad flag is the person's to
fix, so it is printed once, in the same shape by every command, with exit code 2.
"""

from __future__ import annotations

import errno
import sys

from wire import AgentServiceError

EXIT_OPERATOR = 2


class OperatorError(AgentServiceError):
    """A mistake the person running the command can fix; `fix` says how."""

    def __init__(self, what: str, fix: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix


_FIXES: dict[int, str] = {
    errno.EADDRINUSE: "another process holds that port: stop it or choose another port",
    errno.EADDRNOTAVAIL: "that address is not on this machine: check --host",
    errno.EACCES: "permission denied: check the path's permissions, or use a port above 1023",
    errno.EPERM: "permission denied: check the path's permissions",
    errno.ENOENT: "check the path",
    errno.EEXIST: "choose a path that does not exist yet",
    errno.ENOTEMPTY: "choose an empty or missing directory",
    errno.ENOSPC: "free some disk space",
    errno.EROFS: "that file system is read-only: choose another path",
    errno.EMFILE: "too many open files: raise the limit with `ulimit -n`",
}


def from_os_error(exc: OSError) -> OperatorError:
    """An OSError that reached the command's edge, as the operator's problem to fix."""
    what = exc.strerror or str(exc)
    if exc.filename is not None:
        what = f"{what}: {exc.filename}"
    elif str(exc) and exc.strerror and exc.strerror not in str(exc):
        what = str(exc)
    elif exc.args and isinstance(exc.args[-1], str) and exc.args[-1] != exc.strerror:
        what = exc.args[-1]
    return OperatorError(what, _FIXES.get(exc.errno or 0, ""))


def report(command: str, failure: OperatorError) -> int:
    """Print `failure` as the command's one line on stderr; the exit code to return."""
    line = (
        f"agent-service {command}: {failure.what}" if command else f"agent-service: {failure.what}"
    )
    if failure.fix:
        line += f" ({failure.fix})"
    print(line, file=sys.stderr, flush=True)
    return EXIT_OPERATOR
