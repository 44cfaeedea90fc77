"""Every command the docs print works as written, from the repository's root, the virtual
environment active (as the README's set-up leaves it after `make demo` / `make test`).

A fenced code block in README.md, docs/*.md or bench/*/README.md is checked when the line
before it marks it (the convention is in the README's Development section):

    <!-- runnable -->             each command is run: exit 0, no traceback
    <!-- runnable: exit N -->     each command is run: exit N, no traceback
    <!-- runnable: expensive -->  benchmarks, long runs: only checked (below)
    <!-- runnable: example -->    needs a server, a capture or a program of yours: only checked

"Only checked": every program of the command exists, and our own ones answer `--help` (a make
target: `make -n TARGET`; pytest: `--collect-only`). A ```python block marked runnable is run
as a script. Files a block's commands write in the repository's root are removed after it.
Unmarked text is not run, but every `--option` it gives one of our commands must exist.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tcpclose.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "bench").glob("*/README.md")]
)
MARK = re.compile(r"<!--\s*runnable(?::\s*(?P<kind>exit\s+\d+|expensive|example))?\s*-->")
ANY_MARK = re.compile(r"^\s*<!--\s*runnable\b")
FENCE = re.compile(r"^(```+)\s*(?P<lang>[\w+-]*)")
#: a command that runs longer than this is not cheap: mark it expensive
TIMEOUT_S = 180
#: programs of this project, which must answer --help
OURS = {"tcpclose", "graceserver", "graceclient"}
TRACEBACK = "Traceback (most recent call last)"


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  #: of the opening fence, 1-based
    kind: str  #: "run", "expensive" or "example"
    status: int  #: the exit status a run must give
    lang: str
    text: str

    def commands(self) -> list[str]:
        """The block's shell commands: one a line (a `\\` continues it), comments left out."""
        out: list[str] = []
        pending = ""
        for raw in self.text.splitlines():
            line = pending + raw.strip()
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            if line and not line.startswith("#"):
                out.append(line)
        return out


def marked_blocks(doc: Path, problems: list[str]) -> list[Block]:
    """The marked blocks of one doc; a mark that is not one of the above, or not followed by
    a fenced block, is added to `problems`."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    for i, line in enumerate(lines):
        if not ANY_MARK.search(line):
            continue
        where = f"{doc.relative_to(REPO)}:{i + 1}"
        mark = MARK.fullmatch(line.strip())
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        end = fence and next(
            (j for j in range(i + 2, len(lines)) if lines[j].startswith(fence.group(1))), None
        )
        if not mark:
            problems.append(f"{where}: unknown mark {line.strip()!r}")
            continue
        if not fence or end is None:
            problems.append(f"{where}: a mark must be followed by a fenced code block")
            continue
        kind = mark.group("kind") or "run"
        status = int(kind.split()[1]) if kind.startswith("exit") else 0
        blocks.append(
            Block(
                doc,
                i + 2,
                "run" if kind.startswith("exit") else kind,
                status,
                fence.group("lang"),
                "\n".join(lines[i + 2 : end]),
            )
        )
    return blocks


PROBLEMS: list[str] = []
BLOCKS = [block for doc in DOCS for block in marked_blocks(doc, PROBLEMS)]
PARAMS = [
    pytest.param(block, id=f"{block.doc.relative_to(REPO)}:{block.line}:{block.kind}")
    for block in BLOCKS
]


def _env() -> dict[str, str]:
    """The environment of `. .venv/bin/activate`: the venv's bin first on PATH."""
    venv_bin = Path(sys.executable).parent
    return {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv_bin.parent),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _tracked_changes() -> str:
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


@contextmanager
def _in_repo() -> Iterator[None]:
    """Around one block: what its commands leave in the repository's root is removed, and a
    tracked file they change fails the test."""
    before = set(REPO.iterdir())
    changed = _tracked_changes()
    try:
        yield
    finally:
        for left in set(REPO.iterdir()) - before:
            if left.is_dir() and not left.is_symlink():
                shutil.rmtree(left)
            else:
                left.unlink()
        assert _tracked_changes() == changed, "a command in the docs changed tracked files"


def _run(argv: list[str], *, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run from the repository's root, the virtual environment active, no standard input."""
    return subprocess.run(
        argv,
        cwd=REPO,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _assert_ran(done: subprocess.CompletedProcess[str], status: int) -> None:
    output = f"{done.args}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert TRACEBACK not in done.stdout + done.stderr, output
    assert done.returncode == status, output


def _checks(command: str) -> list[list[str]]:
    """What checking a command that is not run means: per program of the pipeline, argv to
    run (our programs' --help, make -n, pytest --collect-only), or [] after finding it."""
    checks: list[list[str]] = []
    for part in re.split(r"\s\|\s", command):
        words = shlex.split(part, comments=True)
        assert words, f"empty command in {command!r}"
        program = words[0]
        assert not program.startswith("sudo"), f"{command!r}: the docs say to run as root"
        found = shutil.which(program, path=_env()["PATH"]) or (
            (REPO / program).exists() and str(REPO / program)
        )
        assert found, f"{command!r}: {program} not found"
        if program == "make":
            checks.append(["make", "-n", *words[1:]])
        elif words[1:3] == ["-m", "pytest"]:
            checks.append([*words, "--collect-only", "-q"])
        elif Path(program).name.startswith("python") or program in OURS:
            # the program and its positional words (command, script or module), then --help
            head = []
            for word in words:
                if word.startswith("-") and word != "-m":
                    break
                head.append(word)
            checks.append([*head, "--help"])
    return checks


@pytest.mark.parametrize("block", PARAMS)
def test_doc_block(block: Block, tmp_path: Path) -> None:
    """The block's commands, in order, as a reader would type them (one shell each)."""
    with _in_repo():
        if block.lang == "python":
            script = tmp_path / "doc_script.py"
            script.write_text(block.text + "\n", encoding="utf-8")
            _assert_ran(_run([sys.executable, str(script)]), block.status)
            return
        for command in block.commands():
            words = shlex.split(command, comments=True)
            assert words[0] not in {"python", "python3", "pytest", "pip"}, (
                f"{command!r}: name the virtual environment's Python: .venv/bin/python"
            )
            if block.kind == "run":
                _assert_ran(_run(["bash", "-c", command]), block.status)
                continue
            for argv in _checks(command):
                _assert_ran(_run(argv, timeout=120), 0)


def test_the_docs_mark_their_commands() -> None:
    """The README's commands are marked (a doc that drops its marks would test nothing), and
    the docs name the virtual environment's Python, never a bare python3 (issue 9)."""
    assert PROBLEMS == []
    readme = [b for b in BLOCKS if b.doc.name == "README.md" and b.doc.parent == REPO]
    assert sum(b.kind == "run" for b in readme) >= 4
    assert {b.kind for b in BLOCKS} == {"run", "expensive", "example"}
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        bare = re.findall(r"(?m)(?:^|`|\$ )(python3 \S+|python (?:-m pytest|bench/)\S*)", text)
        assert not bare, f"{doc.relative_to(REPO)}: {bare}: write .venv/bin/python"


#: a command of ours in a doc: in a code span or a line, at its start, after `$ ` or a pipe
OUR_COMMAND = re.compile(
    r"(?:^|\$ |\| )\s*(?P<prog>tcpclose (?P<sub>[a-z]+)|graceserver|graceclient)\b"
    r"(?P<rest>[^|#`]*)"
)
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def test_every_option_the_docs_show_exists() -> None:
    """Synopses, transcripts and prose are not run, but every `--option` they give one of our
    commands must be in that command's --help (a renamed or removed option fails here)."""
    helps: dict[str, str] = {}
    missing: list[str] = []
    seen = 0
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for span in [*re.findall(r"`([^`\n]+)`", text), *text.splitlines()]:
            for found in OUR_COMMAND.finditer(span):
                prog = found.group("prog")
                if found.group("sub") and found.group("sub") not in COMMANDS:
                    continue  # prose: "tcpclose itself"
                if prog not in helps:
                    done = _run([*prog.split(), "--help"], timeout=60)
                    helps[prog] = done.stdout if done.returncode == 0 else ""
                if not helps[prog]:
                    missing.append(f"{doc.relative_to(REPO)}: {prog}: no --help")
                    continue
                seen += 1
                missing += [
                    f"{doc.relative_to(REPO)}: {prog} {option}"
                    for option in OPTION.findall(found.group("rest"))
                    if option not in helps[prog]
                ]
    assert seen > 100  # the pattern still finds the docs' commands
    assert missing == []
