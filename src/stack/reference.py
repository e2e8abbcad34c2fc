"""``python -m stack.reference``: docs/reference.md, generated from the code so it cannot drift.

The reference has two parts, both found by reading the project's source rather than listed by
hand, so that a new variable, a new flag or a module moved elsewhere shows up by itself:

- every environment variable the applications read, with its default and the files that read
  it (:func:`discover_env_reads`; tests/unit/test_compose.py checks docker-compose.yml with the
  same scan);
- the ``--help`` of every command-line tool: each module with a top-level ``main`` that builds
  an ``argparse.ArgumentParser`` (:func:`discover_clis`), run as ``python -m MODULE --help`` with
  a 100-column terminal and none of the apps' variables set, so the text is the same anywhere.

The output is sorted and holds no absolute path and no time, so regenerating it on another
machine gives the same bytes::

    python -m stack.reference            # print it
    python -m stack.reference --write    # write docs/reference.md
    python -m stack.reference --check    # exit 1 with a diff if docs/reference.md is stale
"""

from __future__ import annotations

import argparse
import ast
import difflib
import operator
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"
REGENERATE = "python -m stack.reference --write"

#: Where the applications' code lives.
ENV_ROOTS = ("src", "docker")
#: Command-line tools: the applications' and the benchmarks'.
CLI_ROOTS = ("src", "docker", "bench")
#: Packages are imported from src/ (the project's package dir) or from the repository root.
PACKAGE_ROOTS = ("src", ".")

#: argparse wraps help to the terminal's width (COLUMNS); a fixed width keeps the text stable.
HELP_COLUMNS = "100"
#: The only variables a ``--help`` run inherits: how to find Python and the packages. Nothing
#: the apps read is passed, so defaults shown in help texts are the built-in ones.
_INHERITED = ("PATH", "HOME", "PYTHONPATH", "SYSTEMROOT", "TMPDIR")


# --------------------------------------------------------------------------------------------
# Environment variables


@dataclass
class EnvRead:
    name: str  #: a variable name, or a pattern like PINOT_TABLE_* for f-string names
    default: str | None  #: source text of the default; None when there is none
    where: list[str] = field(default_factory=list)
    #: The file (relative to the repository) whose names ``default`` refers to: the read's own
    #: file, which for a wrapper's templated read is the wrapper's, not its caller's.
    default_file: str | None = None


_BASE_READERS = {"getenv"}  # os.getenv; os.environ.get / [] / `in` are matched structurally


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "get" and _is_environ(func.value):
        return "environ.get"
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _name_pattern(node: ast.AST) -> str | ast.AST:
    """The variable name a reader is given: a literal, a ``*`` pattern, or the expression."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) else "*" for part in node.values
        )
    return node


def _template_params(template: ast.JoinedStr) -> set[str]:
    """The names an f-string formats: ``{prefix}`` and ``{prefix.upper()}`` both give prefix."""
    names = set()
    for part in template.values:
        if isinstance(part, ast.FormattedValue):
            value = part.value
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
                value = value.func.value
            if isinstance(value, ast.Name):
                names.add(value.id)
    return names


#: The string methods an f-string of a name may call and still be filled in statically.
_CASE_METHODS: dict[str | None, Callable[[str], str]] = {
    None: str,
    "upper": str.upper,
    "lower": str.lower,
}


def _fill(template: ast.JoinedStr, values: dict[str, ast.AST]) -> str | None:
    """The f-string with each parameter a literal string gives, or None if one is not."""
    out = []
    for part in template.values:
        if isinstance(part, ast.Constant):
            out.append(str(part.value))
            continue
        value = part.value  # type: ignore[attr-defined]
        method = None
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
            method, value = value.func.attr, value.func.value
        literal = values.get(value.id) if isinstance(value, ast.Name) else None
        if not (isinstance(literal, ast.Constant) and isinstance(literal.value, str)):
            return None
        if method not in _CASE_METHODS:
            return None  # a call whose result cannot be known without running it
        out.append(_CASE_METHODS[method](literal.value))
    return "".join(out)


def _default_node(call: ast.Call) -> ast.AST | None:
    if len(call.args) > 1:
        return call.args[1]
    for keyword in call.keywords:
        if keyword.arg == "default":
            return keyword.value
    return None


def _default_of(call: ast.Call) -> str | None:
    node = _default_node(call)
    return None if node is None else ast.unparse(node)


def python_files(roots: list[Path], exclude: Iterable[Path] = ()) -> list[Path]:
    """The ``*.py`` files under ``roots``, sorted per root, except those under ``exclude``."""
    skipped = list(exclude)
    files = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if not any(path.is_relative_to(skip) for skip in skipped):
                files.append(path)
    return files


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


@dataclass(frozen=True)
class _Template:
    """A read inside a wrapper whose variable name is an f-string of the wrapper's parameters."""

    params: list[str]
    name: ast.JoinedStr
    default: ast.AST | None
    path: Path


def _loop_bindings(loop: ast.For) -> list[dict[str, ast.AST]]:
    """For a loop over a literal list of tuples (or of constants), each round's names."""
    if not isinstance(loop.iter, ast.List | ast.Tuple):
        return []
    if isinstance(loop.target, ast.Name):
        targets: list[ast.AST] = [loop.target]
    elif isinstance(loop.target, ast.Tuple):
        targets = list(loop.target.elts)
    else:
        return []
    rounds = []
    for item in loop.iter.elts:
        values = item.elts if len(targets) > 1 and isinstance(item, ast.Tuple) else [item]
        if len(values) != len(targets):
            return []
        rounds.append(
            {t.id: v for t, v in zip(targets, values, strict=True) if isinstance(t, ast.Name)}
        )
    return rounds


def discover_env_reads(files: list[Path]) -> dict[str, EnvRead]:
    """Every environment variable the code in ``files`` reads, with its default.

    A function that passes one of its parameters to a reader becomes a reader itself (that is
    how ``clients.settings.env`` and ``env_int`` are found), so wrappers need no listing here.
    A function that reads variables named by f-strings of its parameters (``add_emit_arguments``
    reads ``{var_prefix}_EMIT`` and more) is recorded at each call with literal arguments, and
    a read in a loop over a literal table of names (``streams.windows``' window flags) once per
    name.
    """
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in files}
    readers = set(_BASE_READERS) | {"environ.get"}
    # Functions that read a variable named by an f-string of one of their parameters: their
    # calls with literal arguments are recorded by name, with the inner read's default.
    templates: dict[str, dict[int, _Template]] = {}
    inner: set[int] = set()  # the reads inside those functions, recorded at their calls instead
    changed = True
    while changed:
        changed = False
        for path, tree in trees.items():
            for func in ast.walk(tree):
                if not isinstance(func, ast.FunctionDef) or func.name in readers:
                    continue
                params = [arg.arg for arg in func.args.args]
                for node in ast.walk(func):
                    if not (isinstance(node, ast.Call) and _call_name(node) in readers):
                        continue
                    if not node.args:
                        continue
                    name = node.args[0]
                    if isinstance(name, ast.Name) and name.id in params:
                        readers.add(func.name)
                        changed = True
                        break
                    if isinstance(name, ast.JoinedStr) and _template_params(name) & set(params):
                        found_in = templates.setdefault(func.name, {})
                        found_in.setdefault(
                            id(node), _Template(params, name, _default_node(node), path)
                        )
                        inner.add(id(node))

    found: dict[str, EnvRead] = {}

    def record(
        name_node: ast.AST, default: str | None, path: Path, line: int, default_in: Path
    ) -> None:
        name = _name_pattern(name_node)
        if not isinstance(name, str):
            return  # a wrapper passing its parameter on; its callers are recorded instead
        read = found.setdefault(name, EnvRead(name, default))
        if read.default is None:
            read.default = default
        if read.default is not None and read.default_file is None:
            read.default_file = _shown(default_in)
        read.where.append(f"{_shown(path)}:{line}")

    for path, tree in trees.items():
        # Reads whose name is a loop variable over a literal table: one read per round.
        looped: set[int] = set()
        for loop in ast.walk(tree):
            if not isinstance(loop, ast.For):
                continue
            rounds = _loop_bindings(loop)
            for node in (n for stmt in loop.body for n in ast.walk(stmt)):
                if not (isinstance(node, ast.Call) and _call_name(node) in readers and node.args):
                    continue
                name = node.args[0]
                if not (rounds and isinstance(name, ast.Name) and name.id in rounds[0]):
                    continue
                looped.add(id(node))
                default = _default_node(node)
                for bound in rounds:
                    if isinstance(default, ast.Name) and default.id in bound:
                        shown = ast.unparse(bound[default.id])
                    else:
                        shown = None if default is None else ast.unparse(default)
                    record(bound[name.id], shown, path, node.lineno, path)

        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_name(node) in templates:
                values = dict(zip(_first(templates, node).params, node.args, strict=False))
                values.update({k.arg: k.value for k in node.keywords if k.arg})
                for template in templates[_call_name(node)].values():  # type: ignore[index]
                    filled = _fill(template.name, values)
                    # A name not known from the call (an argument that is not a literal) is
                    # still recorded, as a pattern, rather than lost.
                    name = template.name if filled is None else ast.Constant(filled)
                    default = template.default
                    if isinstance(default, ast.JoinedStr):
                        # A default built from the same parameters, filled the same way.
                        text = _fill(default, values)
                        default = default if text is None else ast.Constant(text)
                    shown = None if default is None else ast.unparse(default)
                    record(name, shown, path, node.lineno, template.path)
            if (
                isinstance(node, ast.Call)
                and _call_name(node) in readers
                and node.args
                and id(node) not in inner
                and id(node) not in looped
            ):
                record(node.args[0], _default_of(node), path, node.lineno, path)
            elif isinstance(node, ast.Subscript) and _is_environ(node.value):
                if isinstance(node.ctx, ast.Load):
                    record(node.slice, None, path, node.lineno, path)
            elif (
                isinstance(node, ast.Compare)
                and len(node.ops) == 1
                and isinstance(node.ops[0], ast.In | ast.NotIn)
                and _is_environ(node.comparators[0])
            ):
                record(node.left, None, path, node.lineno, path)
    return found


def _first(templates: dict[str, dict[int, _Template]], call: ast.Call) -> _Template:
    return next(iter(templates[_call_name(call)].values()))  # type: ignore[index]


def app_files() -> list[Path]:
    return python_files([ROOT / root for root in ENV_ROOTS])


# --------------------------------------------------------------------------------------------
# Defaults, resolved statically where the code states them as constants


class _Unresolved(Exception):
    """The default is computed at run time (a call, a parameter): shown as its expression."""


_OPERATORS: dict[type[ast.AST], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Div: operator.truediv,
}


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _module_name(path: Path) -> str | None:
    for root in PACKAGE_ROOTS:
        base = (ROOT / root).resolve()
        if path.is_relative_to(base):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            packages = [base.joinpath(*parts[:i]) for i in range(1, len(parts))]
            if parts and all((p / "__init__.py").is_file() for p in packages):
                return ".".join(parts)
    return None


@cache
def _module_files() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for path in python_files([ROOT / root for root in CLI_ROOTS]):
        name = _module_name(path)
        if name is not None:
            modules.setdefault(name, path)
    return modules


@dataclass(frozen=True)
class _Class:
    path: Path
    node: ast.ClassDef


def _lookup(path: Path, name: str, depth: int) -> Any:
    """The value a module-level ``name`` has in ``path``, or its class definition."""
    if depth > 10:
        raise _Unresolved(name)
    for stmt in _tree(path).body:
        if isinstance(stmt, ast.ClassDef) and stmt.name == name:
            return _Class(path, stmt)
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in stmt.targets
        ):
            return _evaluate(stmt.value, path, depth + 1)
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and stmt.target.id == name
            and stmt.value is not None
        ):
            return _evaluate(stmt.value, path, depth + 1)
        if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
            for alias in stmt.names:
                if (alias.asname or alias.name) == name and stmt.module in _module_files():
                    return _lookup(_module_files()[stmt.module], alias.name, depth + 1)
    raise _Unresolved(name)


def _evaluate(node: ast.AST, path: Path, depth: int = 0) -> Any:
    """A constant expression's value: literals, arithmetic, module constants, class fields."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple | ast.List):
        return tuple(_evaluate(item, path, depth) for item in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand, path, depth)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left, path, depth), _evaluate(node.right, path, depth)
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.Name):
        value = _lookup(path, node.id, depth)
        if isinstance(value, _Class):
            raise _Unresolved(node.id)  # a class itself is no default
        return value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        owner = _lookup(path, node.value.id, depth)
        if isinstance(owner, _Class):
            # A dataclass field's default: ``window_ms: int = 5 * MINUTE_MS``.
            for stmt in owner.node.body:
                if (
                    isinstance(stmt, ast.AnnAssign)
                    and isinstance(stmt.target, ast.Name)
                    and stmt.target.id == node.attr
                    and stmt.value is not None
                ):
                    return _evaluate(stmt.value, owner.path, depth + 1)
    raise _Unresolved(ast.unparse(node))


def default_text(read: EnvRead) -> str:
    """The default as the reference shows it: the value, else the expression computing it."""
    if read.default is None:
        return "none"
    try:
        path = ROOT / read.default_file if read.default_file else None
        if path is None:
            raise _Unresolved(read.default)
        value = _evaluate(ast.parse(read.default, mode="eval").body, path)
    except (_Unresolved, SyntaxError, ArithmeticError, TypeError):
        return f"computed: `{read.default}`"
    if value == "":
        return "empty"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        value = ",".join(str(item) for item in value)
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_env(reads: dict[str, EnvRead]) -> str:
    lines = [
        "| variable | default | read in |",
        "|---|---|---|",
    ]
    for name in sorted(reads):
        read = reads[name]
        files = sorted({where.rsplit(":", 1)[0] for where in read.where})
        lines.append(
            f"| `{_cell(name)}` | {_cell(default_text(read))} | "
            + ", ".join(f"`{f}`" for f in files)
            + " |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Command-line tools


@dataclass(frozen=True, order=True)
class Cli:
    command: tuple[str, ...]  #: how to run it, e.g. ("python", "-m", "streams.windows")
    source: str  #: the file, relative to the repository, whose ``main`` builds the parser

    @property
    def shown(self) -> str:
        return " ".join(self.command)


def _builds_parser(tree: ast.Module) -> bool:
    has_main = any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)
    parser = any(
        isinstance(n, ast.Call) and _call_name(n) == "ArgumentParser" for n in ast.walk(tree)
    )
    return has_main and parser


def _has_main_guard(tree: ast.Module) -> bool:
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Compare):
            words = {ast.unparse(stmt.test.left), *map(ast.unparse, stmt.test.comparators)}
            if words == {"__name__", "'__main__'"}:
                return True
    return False


def _command(path: Path) -> tuple[str, ...]:
    module = _module_name(path)
    if module is None:
        return ("python", _shown(path))
    if module.endswith(".__main__"):
        module = module.removesuffix(".__main__")
    return ("python", "-m", module)


def discover_clis(files: Iterable[Path]) -> list[Cli]:
    """Every command-line tool in ``files``: a module with a top-level ``main`` that builds an
    ``argparse.ArgumentParser``, run as itself (a ``__main__`` guard, or a ``__main__.py``) or
    as its package, whose ``__main__.py`` imports that ``main``."""
    files = list(files)
    parsers = {path for path in files if _builds_parser(_tree(path))}
    clis: dict[Path, Cli] = {}
    for path in sorted(parsers):
        if path.name == "__main__.py" or _has_main_guard(_tree(path)):
            clis[path] = Cli(_command(path), _shown(path))
    for path in files:
        if path.name != "__main__.py":
            continue
        for stmt in _tree(path).body:
            if not (isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0):
                continue
            target = _module_files().get(stmt.module)
            if target in parsers and "main" in {a.name for a in stmt.names}:
                clis.setdefault(target, Cli(_command(path), _shown(target)))  # type: ignore[arg-type]
    return sorted(clis.values())


def help_text(cli: Cli) -> str:
    """``COMMAND --help`` as a 100-column terminal shows it, with only the built-in defaults."""
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update(COLUMNS=HELP_COLUMNS, LC_ALL="C.UTF-8", NO_COLOR="1", PYTHONIOENCODING="utf-8")
    argv = [sys.executable, *cli.command[1:], "--help"]
    result = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{cli.shown} --help exited {result.returncode}:\n{result.stderr}")
    # A path of this checkout in a help text would make the reference differ per machine.
    text = result.stdout.replace(str(ROOT) + os.sep, "").replace(str(ROOT), ".")
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


def cli_files() -> list[Path]:
    return python_files([ROOT / root for root in CLI_ROOTS])


def render_clis(clis: list[Cli], helps: dict[Cli, str]) -> str:
    return "\n".join(
        f"### `{cli.shown}`\n\nDefined in `{cli.source}`.\n\n```text\n{helps[cli]}```\n"
        for cli in clis
    )


# --------------------------------------------------------------------------------------------
# The document


HEADER = f"""\
# Reference: environment variables and command-line tools

<!-- Generated by `{REGENERATE}` from the code (src/stack/reference.py); do not edit by hand. -->

Generated from the code: `{REGENERATE}` rewrites this file and
`tests/unit/test_reference.py` fails while it is stale. What the settings mean is explained in
[operations.md](operations.md) and [semantics.md](semantics.md).
"""

ENV_INTRO = """\
## Environment variables

Every variable the applications read (`src/`, `docker/`), found by scanning their
source. An empty value counts as unset. A default shown as `computed:` is the expression the code
evaluates when it starts; a name with `*` stands for several variables (an f-string in the code).
Command-line flags, where a tool has one for the same setting, take precedence.
"""

CLI_INTRO = """\
## Command-line tools

Each tool's `--help`, as a 100-column terminal shows it with none of the variables above set.
"""


def render() -> str:
    """The whole of docs/reference.md."""
    clis = discover_clis(cli_files())
    with ThreadPoolExecutor(max_workers=4) as pool:
        helps = dict(zip(clis, pool.map(help_text, clis), strict=True))
    return "\n".join(
        [
            HEADER,
            ENV_INTRO,
            render_env(discover_env_reads(app_files())),
            CLI_INTRO,
            render_clis(clis, helps),
        ]
    )


def stale_diff(path: Path, text: str) -> str:
    """A unified diff from ``path`` to ``text``; empty when they are the same."""
    current = path.read_text(encoding="utf-8") if path.is_file() else ""
    return "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{_shown(path)} (committed)",
            tofile=f"{_shown(path)} (generated)",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack.reference",
        description="Generate docs/reference.md (environment variables and --help of every "
        "command-line tool) from the code.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="write the reference file")
    action.add_argument(
        "--check",
        action="store_true",
        help="exit 1 with a diff if the reference file differs from what the code gives",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=REFERENCE,
        help="the reference file (default docs/reference.md)",
    )
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {_shown(args.output.resolve())}")
        return 0
    if args.check:
        diff = stale_diff(args.output, text)
        if diff:
            sys.stdout.write(diff)
            print(f"{_shown(args.output.resolve())} is stale: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
