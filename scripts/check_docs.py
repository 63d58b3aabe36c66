"""Every command in README.md and docs/ is one the project can run, checked without running it.

    python scripts/check_docs.py          # run by `make docs` and by tests/test_docs.py; exit 1 on a finding

What is checked, in the Markdown files of DOC_FILES (README.md, docs/*.md, the dataset's notes):
- fenced `bash`, `sh` and `shell` blocks: every line is a command (`\\` continues it, `#` comments,
  `&&`, `||`, `;` and `|` separate commands); `console` blocks: the lines after `$ `, the rest is output;
- `sparse-ae ...`: parsed by the real parser (`pipeline.cli.build_parser`), then its `--set`
  overrides are validated by the same config loader the command uses (pydantic: unknown keys,
  types, ranges), without TensorFlow and without running anything;
- `make TARGET [VAR=value]`: TARGET is a Makefile target, and `make -n` expands the recipe whose
  `sparse-ae` and `python` lines are checked as above (so `make demo ARGS="--set ..."` is too);
- `python -m MODULE`: the module is found; `python FILE.py`: the file exists;
- `.venv/bin/TOOL`, `airflow`, `tensorboard`, `jupyter`: installed beside this interpreter, and
  arguments naming repository files (`*.py`, `*.ipynb`) exist;
- `docker build|push` (`build` needs the Dockerfile), `export NAME=value`;
- fenced `python` blocks: they compile, and every import resolves (project modules: the imported
  names are defined in their source, read without importing TensorFlow);
- relative links (files and `#anchors` of Markdown headings) point at something that exists.
Any other command is a finding: a new kind of command needs a rule here, or a `text` block.

The messages too: every `sparse-ae ...` quoted between backticks in a string of the project's code
(docstrings and help texts aside) is checked as above, each f-string placeholder standing for a number or
for a word (one of the two must pass); remedies built by a function are checked by tests/test_messages.py
on the real messages.

And the timings: a duration quoted in a doc (docs/benchmarks.md aside), a comment or docstring of the
project's code, or a line of the Makefile, the Dockerfile, .ci/run or the shell scripts is a finding,
unless it is a setting (SETTINGS_NOT_TIMINGS).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import glob
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
import tokenize
from collections.abc import Callable, Iterator, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
PROJECT_PACKAGES = {"sparse_ae", "pipeline", "components", "benchmarks", "pipeline_config"}
_FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
_SEPARATORS = {"&&", "||", ";", "|"}


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def doc_files(root: str = ROOT) -> list[str]:
    """README.md, every docs/*.md page and the Markdown notes beside the code (sparse_ae/**/*.md)."""
    return (
        [os.path.join(root, "README.md")]
        + sorted(glob.glob(os.path.join(root, "docs", "*.md")))
        + sorted(glob.glob(os.path.join(root, "sparse_ae", "**", "*.md"), recursive=True))
    )


def fenced_blocks(text: str) -> Iterator[tuple[str, str, int]]:
    """(language, body, line number of the first body line) of each fenced block."""
    language: str | None = None
    body: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if language is None and match:
            language, body, start = match.group(1).lower(), [], number + 1
        elif language is not None and line.startswith("```"):
            yield language, "\n".join(body), start
            language = None
        elif language is not None:
            body.append(line)


def shell_commands(language: str, body: str, start: int = 1) -> Iterator[tuple[int, list[str]]]:
    """(line number, argv) of every command of a shell block; console blocks: only the `$ ` lines."""
    lines = body.splitlines()
    index = 0
    while index < len(lines):
        number, line = start + index, lines[index]
        index += 1
        if language == "console":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        while line.rstrip().endswith("\\") and index < len(lines):
            line = line.rstrip()[:-1] + " " + lines[index]
            index += 1
        tokens = shlex.split(line, comments=True)
        command: list[str] = []
        for token in tokens + [";"]:
            if token in _SEPARATORS:
                if command:
                    yield number, command
                command = []
            else:
                command.append(token)


# ---------------------------------------------------------------------------------------------- sparse-ae


def _pipeline_overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(getattr(args, "set", None) or [])
    if getattr(args, "dataset", None) and getattr(args, "command", None) == "pipeline":
        overrides.insert(0, f"dataset.name={args.dataset}")
    if getattr(args, "pipeline_root", None):
        overrides.insert(0, f"pipeline_root={args.pipeline_root}")
    if getattr(args, "serving_dir", None):
        overrides.insert(0, f"serving_dir={args.serving_dir}")
    return overrides


def _validate_pipeline(args: argparse.Namespace) -> None:
    from pipeline_config import load_config

    base = None
    if getattr(args, "preset", None):
        from sparse_ae.presets import preset

        base = {"model": preset(args.preset)}
    load_config(_pipeline_overrides(args), base=base)


def _validate_train(args: argparse.Namespace) -> None:
    from sparse_ae.cli import command_config
    from sparse_ae.presets import preset

    command_config(args, model=preset(args.preset))


def _validate_library(args: argparse.Namespace) -> None:
    from sparse_ae.cli import command_config

    command_config(args)


def _validate_tune(args: argparse.Namespace) -> None:
    from sparse_ae.cli import TuneConfig, command_config

    command_config(args, TuneConfig)


def _validate_pipeline_command(args: argparse.Namespace) -> None:
    from pipeline.cli import pipeline_config_from

    pipeline_config_from(args)


def _validate_bench(args: argparse.Namespace) -> None:
    if args.bench_args:  # benchmarks/run.py builds its parser inside main(): document `make bench` instead
        raise ValueError("`sparse-ae bench`'s options are not checked here: document `make bench`/`make bench-full`")


# How each command turns its --set items (and options that set keys) into its validated config, as the
# command itself does before anything slow; a command not named here takes the pipeline's config.
VALIDATORS: dict[str, Callable[[argparse.Namespace], None]] = {
    "train": _validate_train,
    "reconstruct": _validate_library,
    "tune": _validate_tune,
    "bench": _validate_bench,
    "prepare": _validate_library,
    "baseline": _validate_library,
    "pipeline": _validate_pipeline_command,
}


def check_sparse_ae(argv: Sequence[str]) -> str | None:
    """None when the real parser takes argv and the command's config validates; else why not."""
    from pipeline.cli import build_parser
    from sparse_ae.cli import parse
    from sparse_ae.errors import ConfigError

    parser, _ = build_parser()
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            args = parse(parser, list(argv))  # as the command parses: --debug/--verbose anywhere
    except SystemExit:
        return f"the parser refuses it: {stderr.getvalue().strip()}"
    if not getattr(args, "command", None):
        return "no command"
    try:
        VALIDATORS.get(args.command, _validate_pipeline)(args)
    except (ConfigError, ValueError) as error:
        return f"its configuration is refused: {error}"
    return None


# --------------------------------------------------------------------------------------------------- make


def makefile_targets(root: str = ROOT) -> list[str]:
    text = _read(os.path.join(root, "Makefile"))
    return re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.M)


def check_make(argv: Sequence[str], root: str = ROOT) -> list[str]:
    targets = [token for token in argv if "=" not in token and not token.startswith("-")]
    if not targets:
        return ["`make` without a target"]
    unknown = [target for target in targets if target not in makefile_targets(root)]
    if unknown:
        return [f"no Makefile target {', '.join(unknown)}"]
    # The recipe as make would run it (prerequisites that are up to date print nothing): its own
    # sparse-ae and python commands are checked like the documented ones.
    result = subprocess.run(["make", "-n", "-C", root, *argv], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return [f"`make -n` fails: {result.stderr.strip()[-300:]}"]
    findings = []
    for line in result.stdout.replace("\\\n", " ").splitlines():
        try:
            tokens = shlex.split(line)
        except ValueError:
            continue
        if tokens and (os.path.basename(tokens[0]) in ("sparse-ae", "python", "python3")):
            findings += [f"in its recipe `{line.strip()}`: {finding}" for finding in check_command(tokens, root)]
    return findings


# ------------------------------------------------------------------------------------------- other tools


def _installed(tool: str) -> bool:
    """On PATH beside this interpreter (the project's .venv/bin), where `make setup` installs tools."""
    return os.access(os.path.join(os.path.dirname(sys.executable), tool), os.X_OK)


def _missing_files(argv: Sequence[str], root: str) -> list[str]:
    return [
        f"no file {token}"
        for token in argv
        if token.endswith((".py", ".ipynb"))
        and not token.startswith("-")
        and not os.path.exists(os.path.join(root, token))
    ]


def check_python(argv: Sequence[str], root: str = ROOT) -> list[str]:
    if len(argv) >= 3 and argv[1] == "-m":
        module = argv[2]
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        return [] if found else [f"no module {module}"]
    if len(argv) >= 2 and argv[1].endswith(".py"):
        return _missing_files(argv[1:2], root)
    return ["a python command other than `python -m MODULE` or `python FILE.py`"]


def check_command(argv: Sequence[str], root: str = ROOT) -> list[str]:
    """Why argv is not a command the project can run ([] when it is)."""
    argv = list(argv)
    while argv and re.fullmatch(r"[A-Za-z_]\w*=.*", argv[0]):  # NAME=value command: the environment
        argv.pop(0)
    if not argv:
        return []
    program = argv[0]
    name = os.path.basename(program)
    if program.startswith(".venv/bin/") and name not in ("sparse-ae", "python", "python3"):
        installed = [] if _installed(name) else [f"{name} is not installed in .venv/bin"]
        return installed + _missing_files(argv[1:], root)
    if name == "sparse-ae":
        finding = check_sparse_ae(argv[1:])
        return [finding] if finding else []
    if name in ("python", "python3"):
        return check_python(argv, root)
    if name == "make":
        return check_make(argv[1:], root)
    if name in ("airflow", "tensorboard", "jupyter"):
        return ([] if _installed(name) else [f"{name} is not installed beside {sys.executable}"]) + _missing_files(
            argv[1:], root
        )
    if name == "docker":
        if argv[1:2] == ["build"]:
            return [] if os.path.exists(os.path.join(root, "Dockerfile")) else ["no Dockerfile"]
        return [] if argv[1:2] == ["push"] else [f"no rule for `docker {' '.join(argv[1:2])}`"]
    if name == "export":
        return [f"not NAME=value: {token}" for token in argv[1:] if not re.fullmatch(r"[A-Za-z_]\w*=.*", token)]
    return [f"no rule for the command `{name}`: add one to scripts/check_docs.py, or make the block `text`"]


# ------------------------------------------------------------------------------------------------ python


def _module_source(module: str, root: str) -> str | None:
    base = os.path.join(root, *module.split("."))
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.exists(path):
            return _read(path)
    return None


def _defined_names(source: str) -> set:
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def check_python_block(body: str, root: str = ROOT) -> list[str]:
    try:
        tree = ast.parse(body)
    except SyntaxError as error:
        return [f"does not compile: {error}"]
    findings = []
    for node in ast.walk(tree):
        modules: list[tuple[str, list[str]]] = []
        if isinstance(node, ast.Import):
            modules = [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [(node.module, [alias.name for alias in node.names])]
        for module, names in modules:
            if module.split(".")[0] in PROJECT_PACKAGES:
                source = _module_source(module, root)
                if source is None:
                    findings.append(f"no module {module}")
                    continue
                defined = _defined_names(source)
                findings += [f"{module} defines no {name}" for name in names if name not in defined]
            else:
                try:
                    found = importlib.util.find_spec(module) is not None
                except ImportError:
                    found = False
                if not found:
                    findings.append(f"no module {module} installed")
    return findings


# ------------------------------------------------------------------------------------------------- links


def heading_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: str) -> set:
    text = _read(path)
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)  # '#' lines in code blocks are no headings
    return {heading_anchor(match) for match in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.M)}


def check_links(path: str) -> list[str]:
    text = _read(path)
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    findings = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        file_part, _, anchor = target.partition("#")
        linked = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if not os.path.exists(linked):
            findings.append(f"link to a missing file: {target}")
        elif anchor and linked.endswith(".md") and anchor not in anchors(linked):
            findings.append(f"link to a missing heading: {target}")
    return findings


# ----------------------------------------------------------------------------------------------- messages

MESSAGE_SOURCES = ("sparse_ae", "components", "pipeline", "benchmarks", "pipeline_config.py")
QUOTED_COMMAND = re.compile(r"`(sparse-ae\b[^`]*)`")
# Stand-ins for an f-string's placeholders: a number for `--to {version}`, a word for `--set dataset.data_dir={dir}`.
SAMPLE_VALUES = ("1", "sample")


def source_files(root: str = ROOT) -> list[str]:
    """The project's Python modules (MESSAGE_SOURCES), tests and scripts aside."""
    paths = []
    for source in MESSAGE_SOURCES:
        path = os.path.join(root, source)
        paths += [path] if path.endswith(".py") else sorted(glob.glob(os.path.join(path, "**", "*.py"), recursive=True))
    return paths


def _docstring(node: ast.AST) -> ast.expr | None:
    """The string expression heading a module's, class's or function's body, if any."""
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, (ast.Constant, ast.JoinedStr)):
            return first.value
    return None


def _not_messages(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are prose, not messages: docstrings, help= and description= texts,
    and the literal parts of f-strings (read with their f-string)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if (docstring := _docstring(node)) is not None:
            skipped.update(id(part) for part in ast.walk(docstring))
        elif isinstance(node, ast.keyword) and node.arg in ("help", "description"):
            skipped.update(id(part) for part in ast.walk(node.value))
        elif isinstance(node, ast.JoinedStr):
            skipped.update(id(part) for part in node.values)
    return skipped


def _texts(node: ast.AST) -> list[str]:
    """A string literal's text; an f-string's, once with each of SAMPLE_VALUES for its placeholders."""
    if isinstance(node, ast.Constant):
        return [node.value] if isinstance(node.value, str) else []
    if isinstance(node, ast.JoinedStr):
        return [
            "".join(str(part.value) if isinstance(part, ast.Constant) else sample for part in node.values)
            for sample in SAMPLE_VALUES
        ]
    return []


def message_commands(path: str) -> Iterator[tuple[int, list[str]]]:
    """(line, its renderings) of every `sparse-ae ...` command quoted in a message string of the module at path."""
    tree = ast.parse(_read(path))
    skipped = _not_messages(tree)
    for node in ast.walk(tree):
        renderings = [QUOTED_COMMAND.findall(text) for text in _texts(node)] if id(node) not in skipped else []
        for commands in zip(*renderings, strict=True):
            yield getattr(node, "lineno", 0), sorted(set(commands))


def check_message(message: str, root: str = ROOT) -> list[str]:
    """Why a `sparse-ae ...` command quoted in message is not one the project can run ([] when all are)."""
    return [
        f"`{command}`: {finding}"
        for command in QUOTED_COMMAND.findall(message)
        for finding in check_command(shlex.split(command), root)
    ]


def check_messages(root: str = ROOT) -> list[str]:
    """Every finding in the commands quoted by the code's messages, as `FILE:LINE: what`."""
    findings = []
    for path in source_files(root):
        relative = os.path.relpath(path, root)
        for number, renderings in message_commands(path):
            found = [check_message(f"`{command}`", root) for command in renderings]
            if all(found):  # no rendering passes: report the first one's findings
                findings += [f"{relative}:{number}: {finding}" for finding in found[0]]
    return findings


# ----------------------------------------------------------------------------------------------- timings

# Machine timings live in docs/benchmarks.md alone (produced by benchmarks/ and the scripts it names);
# other pages, the Makefile and the code's comments and docstrings link there instead of quoting them.
BENCHMARKS_PAGE = os.path.join("docs", "benchmarks.md")
DURATION = re.compile(r"\b\d[\d,]*(?:\.\d+)?\s?(?:µs|ms|s|sec|seconds?|min|minutes?|h|hours?)\b")
# Durations that are settings, not measurements: limits, timeouts, intervals and the cost model's constants.
SETTINGS_NOT_TIMINGS = (
    "Airflow's default 30 s",
    "within 5 s",
    "24 hours",
    "`S` = 25 s",
    "`c` = 0.15 ms",
    "sampled every 0.2 s",
    "fixed cost < 3 s",
)


def _comments_and_docstrings(path: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every `#` comment and docstring in the Python module at path."""
    source = _read(path)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        docstring = _docstring(node)
        if isinstance(docstring, ast.Constant) and isinstance(docstring.value, str):
            for offset, line in enumerate(docstring.value.splitlines()):
                yield docstring.lineno + offset, line


def duration_figures(text: str) -> list[str]:
    """The durations quoted in text, the settings of SETTINGS_NOT_TIMINGS aside."""
    for setting in SETTINGS_NOT_TIMINGS:
        text = text.replace(setting, "")
    return DURATION.findall(text)


def check_timings(root: str = ROOT) -> list[str]:
    """Every machine timing quoted outside docs/benchmarks.md, as `FILE:LINE: what`: in the docs, the build
    and setup files (every line) and the comments and docstrings of the project's Python."""
    lines: list[tuple[str, int, str]] = []
    plain = [os.path.join(root, name) for name in ("Makefile", "Dockerfile", os.path.join(".ci", "run"))]
    plain += sorted(glob.glob(os.path.join(root, "scripts", "*.sh")))
    for path in doc_files(root) + [path for path in plain if os.path.exists(path)]:
        if os.path.relpath(path, root) != BENCHMARKS_PAGE:
            lines += [(path, number, line) for number, line in enumerate(_read(path).splitlines(), 1)]
    for path in source_files(root) + sorted(glob.glob(os.path.join(root, "scripts", "*.py"))):
        lines += [(path, number, text) for number, text in _comments_and_docstrings(path)]
    return [
        f"{os.path.relpath(path, root)}:{number}: {', '.join(figures)}: a machine timing outside {BENCHMARKS_PAGE}"
        for path, number, line in lines
        if (figures := duration_figures(line))
    ]


# -------------------------------------------------------------------------------------------------- main


def check_file(path: str, root: str = ROOT) -> list[str]:
    """Every finding in one Markdown file, as `FILE:LINE: what`."""
    relative = os.path.relpath(path, root)
    text = _read(path)
    findings = [f"{relative}: {finding}" for finding in check_links(path)]
    for language, body, start in fenced_blocks(text):
        if language in SHELL_LANGUAGES:
            for number, argv in shell_commands(language, body, start):
                findings += [
                    f"{relative}:{number}: `{shlex.join(argv)}`: {finding}" for finding in check_command(argv, root)
                ]
        elif language == "python":
            findings += [f"{relative}:{start}: python block: {finding}" for finding in check_python_block(body, root)]
    return findings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/check_docs.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="*", help="Markdown files (default: README.md, docs/*.md, notes in sparse_ae/)")
    args = parser.parse_args(argv)
    files = args.files or doc_files()
    findings = [finding for path in files for finding in check_file(os.path.abspath(path))]
    if not args.files:
        findings += check_messages() + check_timings()
    for finding in findings:
        print(finding, file=sys.stderr)
    print(
        f"checked {len(files)} files and {'no' if args.files else 'the'} messages: {len(findings) or 'no'} finding(s)"
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.path.insert(0, ROOT)  # the project's modules, also without an installed package
    sys.exit(main())
