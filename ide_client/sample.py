"""A small sample git workspace (`src/auth.js`, one commit) for the demo and the tests."""

from __future__ import annotations

from pathlib import Path

from ide_client.git import init_repository, run_git

AUTH_JS = """\
// Session authentication for the sample app.
const crypto = require("crypto");

const sessions = new Map();

function hashPassword(password, salt) {
  return crypto.scryptSync(password, salt, 32).toString("hex");
}

function login(users, username, password) {
  const user = users.get(username);
  if (!user || hashPassword(password, user.salt) !== user.hash) {
    return null;
  }
  const token = crypto.randomBytes(16).toString("hex");
  sessions.set(token, username);
  return token;
}

function logout(token) {
  sessions.delete(token);
}

function currentUser(token) {
  return sessions.get(token) ?? null;
}

module.exports = { hashPassword, login, logout, currentUser };
"""

README_MD = """\
# Sample app

A tiny Node.js module used to demonstrate agent-service. Try: "Add logging to src/auth.js".
"""

SAMPLE_FILES = {"src/auth.js": AUTH_JS, "README.md": README_MD}

# Set in the repository itself, so that committing works on a machine with no git identity
# and whatever the user's global settings (signing, hooks, line endings).
_LOCAL_CONFIG = {
    "user.name": "Sample Author",
    "user.email": "sample@example.invalid",
    "commit.gpgsign": "false",
    "core.autocrlf": "false",
    "core.hooksPath": ".git/no-hooks",
}


def create_sample_workspace(path: Path) -> Path:
    """Create the sample git workspace at `path` (missing or empty) and return its root."""
    path.mkdir(parents=True, exist_ok=True)
    if any(path.iterdir()):
        raise FileExistsError(f"{path} is not empty; the sample workspace needs an empty directory")
    for relative, content in SAMPLE_FILES.items():
        file = path / relative
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content, encoding="utf-8")
    init_repository(path)
    for key, value in _LOCAL_CONFIG.items():
        run_git(path, "config", key, value)
    run_git(path, "add", "--all")
    run_git(path, "commit", "--quiet", "--no-verify", "-m", "Sample app")
    return path
