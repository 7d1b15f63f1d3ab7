"""Which workspace paths git would ignore: `.gitignore` files at every level, `.git/info/exclude`.

Pure Python (pathspec's gitignore semantics), so it works in a workspace that is not a git
repository and never runs git. Rules of a deeper `.gitignore` override those above it, a
`!pattern` re-includes, and an ignored directory is never entered (as in git, nothing under
it can be re-included). `.git` itself is always ignored.
"""

from __future__ import annotations

from pathspec import GitIgnoreSpec

ALWAYS_IGNORED = frozenset({".git"})


class IgnoreRules:
    """The ignore rules met so far on a walk, each kept with the directory it applies under."""

    def __init__(self) -> None:
        self._specs: list[tuple[str, GitIgnoreSpec]] = []

    def add(self, directory: str, text: str) -> None:
        """The rules of the ignore file in `directory` ('' for the root, else 'a/b')."""
        spec = GitIgnoreSpec.from_lines(text.splitlines())
        self._specs.append((f"{directory}/" if directory else "", spec))

    def ignored(self, path: str, *, is_dir: bool) -> bool:
        """Whether `path` (relative to the root, '/'-separated) is ignored."""
        if path.rsplit("/", 1)[-1] in ALWAYS_IGNORED:
            return True
        verdict = False
        for prefix, spec in self._specs:
            if not path.startswith(prefix):
                continue
            check = spec.check_file(path[len(prefix) :] + ("/" if is_dir else ""))
            if check.include is not None:
                verdict = check.include
        return verdict


def glob_matcher(pattern: str) -> GitIgnoreSpec:
    """A glob with gitignore's rules: no '/' matches a name at any depth, '**' any directories."""
    return GitIgnoreSpec.from_lines([pattern])
