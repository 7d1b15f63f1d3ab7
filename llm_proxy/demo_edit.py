"""The demo model's one skill: put a log line at the start of each function, as a git diff.

Python files are read with `ast` (a `logging` logger, then `logger.info(...)` in
each function body, after its docstring). JavaScript and TypeScript files are
read line by line: a function, method or arrow-function header that ends with
`{` gets a `console.log(...)` as its first line; headers spread over several
lines are left alone. Other languages are not supported.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from wire import split_lines

PYTHON_SUFFIXES = frozenset({".py", ".pyw"})
SCRIPT_SUFFIXES = frozenset({".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts"})

_JS_HEADERS = (
    # function name(...) {   export default async function* name(...) {
    re.compile(
        r"^\s*(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*(?P<name>[\w$]+)"
        r"\s*(?:<[^>]*>)?\(.*\)\s*(?::[^{]+)?\{$"
    ),
    # const name = (...) => {   const name = async function (...) {   name = (...) => {
    re.compile(
        r"^\s*(?:export\s+)?(?:(?:const|let|var|static|public|private|protected|readonly)\s+)*"
        r"(?P<name>[\w$]+)\s*(?::[^=]+)?=\s*(?:async\s+)?"
        r"(?:function\b\s*\*?\s*[\w$]*\s*(?:<[^>]*>)?\(.*\)|\(.*\)|[\w$]+)\s*(?::[^=]+)?(?:=>)?\s*\{$"
    ),
    # method(...) {   async method(...) {   static get name() {   private name(...): T {
    re.compile(
        r"^\s*(?:(?:public|private|protected|static|async|get|set|override|readonly)\s+)*"
        r"\*?\s*(?P<name>#?[\w$]+)\s*(?:<[^>]*>)?\((?:(?!function\b|=>).)*\)\s*(?::[^{=]+)?\{$"
    ),
)
_NOT_FUNCTIONS = frozenset(
    {"if", "for", "while", "switch", "catch", "with", "function", "return", "else", "do", "try"}
)
_TRAILING_COMMENT = re.compile(r"\s*//.*$")


@dataclass(frozen=True)
class LoggingPatch:
    """What adding logging to one file does: the new content, the diff, the functions touched."""

    path: str
    language: str
    new_content: str
    diff: str
    functions: tuple[str, ...]


def add_logging(path: str, content: str) -> LoggingPatch | None:
    """Logging added to `content` of `path`; None if the language is not supported.

    A patch with an empty diff means there was nothing to add (no functions, or
    every function already starts with its log line).
    """
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in PYTHON_SUFFIXES:
        language, (new_content, functions) = "Python", _python_logging(content)
    elif suffix in SCRIPT_SUFFIXES:
        language, (new_content, functions) = "JavaScript", _script_logging(content)
    else:
        return None
    diff = git_diff(path, content, new_content) if functions else ""
    return LoggingPatch(path, language, new_content, diff, tuple(functions))


def git_diff(path: str, old: str, new: str) -> str:
    """The change from `old` to `new` as `git diff` writes it ("" when they are equal)."""
    hunks = list(
        difflib.unified_diff(split_lines(old), split_lines(new), f"a/{path}", f"b/{path}", n=3)
    )
    if not hunks:
        return ""
    lines = [f"diff --git a/{path} b/{path}\n"]
    for line in hunks:
        lines.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(lines)


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _python_logging(content: str) -> tuple[str, list[str]]:
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError):
        return content, []
    lines = split_lines(content)
    newline = _newline(content)
    logger = _python_logger_name(tree) or "logger"
    inserts: list[tuple[int, list[str]]] = []
    functions: list[str] = []
    for qualname, node in _python_functions(tree):
        first = node.body[0]
        if first.lineno == node.lineno:
            continue  # `def f(): ...` on one line has no body line to log in
        at = (first.end_lineno or first.lineno) if _is_docstring(first) else first.lineno - 1
        indent = lines[first.lineno - 1][: first.col_offset]
        log_line = f'{indent}{logger}.info("{qualname} called"){newline}'
        if at < len(lines) and lines[at] == log_line:
            continue
        inserts.append((at, [log_line]))
        functions.append(qualname)
    if functions and _python_logger_name(tree) is None:
        inserts.extend(_python_logger_setup(tree, lines, newline))
    return "".join(_insert(lines, inserts)), functions


def _python_functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method with its qualified name, in source order."""
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((prefix + child.name, child))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return sorted(found, key=lambda item: item[1].lineno)


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _python_logger_name(tree: ast.Module) -> str | None:
    """The module's existing `name = logging.getLogger(...)`, if any."""
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr == "getLogger"
            and isinstance(node.value.func.value, ast.Name)
            and node.value.func.value.id == "logging"
        ):
            return node.targets[0].id
    return None


def _python_logger_setup(
    tree: ast.Module, lines: list[str], newline: str
) -> list[tuple[int, list[str]]]:
    """`import logging` and `logger = logging.getLogger(__name__)` after the module's imports."""
    body = tree.body
    imports_logging = any(
        isinstance(node, ast.Import) and any(alias.name == "logging" for alias in node.names)
        for node in body
    )
    leading = 1 if body and _is_docstring(body[0]) else 0
    imports: list[ast.Import | ast.ImportFrom] = []
    for node in body[leading:]:
        if not isinstance(node, ast.Import | ast.ImportFrom):
            break
        imports.append(node)
    logger_line = f"logger = logging.getLogger(__name__){newline}"
    if imports:
        end = imports[-1].end_lineno or imports[-1].lineno
        setup = [(end, [newline, logger_line])]
        if not imports_logging:
            setup.append((_sorted_import_position(imports, end), [f"import logging{newline}"]))
        return setup
    block = [f"import logging{newline}", newline, logger_line]
    if leading:
        return [(body[0].end_lineno or body[0].lineno, [newline, *block])]
    at = 0
    while at < len(lines) and lines[at].startswith("#"):
        at += 1  # keep a shebang, encoding line or licence header first
    return [(at, [*block, newline])]


def _sorted_import_position(imports: list[ast.Import | ast.ImportFrom], end: int) -> int:
    """Where `import logging` goes: in order among plain imports, after `__future__` ones."""
    plain = [node for node in imports if isinstance(node, ast.Import)]
    later = next((node for node in plain if node.names[0].name > "logging"), None)
    if later is not None:
        return later.lineno - 1
    if plain:
        return plain[-1].end_lineno or plain[-1].lineno
    first = next((node for node in imports if not _is_future_import(node)), None)
    return first.lineno - 1 if first else end


def _is_future_import(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and node.module == "__future__"


def _script_logging(content: str) -> tuple[str, list[str]]:
    lines = split_lines(content)
    newline = _newline(content)
    quote = "'" if content.count("'") > content.count('"') else '"'
    semicolon = ";" if any(line.rstrip().endswith(";") for line in lines) else ""
    unit = "\t" if any(line.startswith("\t") for line in lines) else "  "
    inserts: list[tuple[int, list[str]]] = []
    functions: list[str] = []
    for number, line in enumerate(lines):
        name = _script_function_name(line)
        if name is None:
            continue
        indent = line[: len(line) - len(line.lstrip())]
        following = next((later for later in lines[number + 1 :] if later.strip()), "")
        following_indent = following[: len(following) - len(following.lstrip())]
        body_indent = following_indent if len(following_indent) > len(indent) else indent + unit
        log_line = f"{body_indent}console.log({quote}{name} called{quote}){semicolon}{newline}"
        if following.strip() == log_line.strip():
            continue
        inserts.append((number + 1, [log_line]))
        functions.append(name)
    return "".join(_insert(lines, inserts)), functions


def _script_function_name(line: str) -> str | None:
    code = _TRAILING_COMMENT.sub("", line.rstrip("\r\n")).rstrip()
    if not code.endswith("{"):
        return None
    for pattern in _JS_HEADERS:
        match = pattern.match(code)
        if match and match.group("name") not in _NOT_FUNCTIONS:
            return match.group("name")
    return None


def _insert(lines: list[str], inserts: list[tuple[int, list[str]]]) -> list[str]:
    """`lines` with each block inserted before line index `at` (stable for equal positions)."""
    result = list(lines)
    if result and not result[-1].endswith("\n") and any(at >= len(lines) for at, _ in inserts):
        result[-1] += "\n"
    for at, block in sorted(inserts, key=lambda item: item[0], reverse=True):
        result[at:at] = block
    return result
