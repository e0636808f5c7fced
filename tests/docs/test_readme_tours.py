"""The README's tours, run as written (bash) against a real `evidence serve`.

A newcomer copies the ``sh`` blocks of the tour sections into a terminal, one
after another, in the clone's directory while `make run` serves. So does this
test, in a temporary directory as the working directory: every block of the
sections in `TOURS`, in order, in one bash (`set -euo pipefail`), so shell
variables carry over from one block to the next as they do in a terminal.

What it changes, and only that:

* the block that is just ``make run`` is not run: the test has started
  ``evidence serve`` itself, in the same working directory and with the same
  default data directory (./evidence-data), on a free port;
* ``.venv/bin/`` becomes this interpreter's venv (the clone's .venv when run
  with `make test`), and ``http://127.0.0.1:8080`` the server's address;
* ``HOME`` and ``XDG_CONFIG_HOME`` point into the temporary directory.

Comment lines right under a command (no blank line between) are what it
prints: each must match a line of its output, in order; ``...`` and ``<word>``
stand for anything. A comment line indented further (``#   ...``) continues
the line above. Any command that fails, or any expected line that does not
appear, fails the test, naming the step.

Afterwards, whatever the tours left in the working directory must be ignored
by the repository's .gitignore, so that `git status` stays clean in a clone.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from serverproc import running

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
TOURS = ("A five-minute tour", "Uploading from a device", "People and access")
README_SERVER = "http://127.0.0.1:8080"
MARKER = "@@readme-step-done {}@@"
STEP_TIMEOUT_SECONDS = 900  # the whole run: ~25 commands, each a Python start-up


@dataclass(frozen=True)
class Step:
    section: str
    command: str
    expected: tuple[str, ...]


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _steps(section: str, block: str) -> list[Step]:
    steps: list[Step] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        command = [line]
        while command[-1].endswith("\\"):
            i += 1
            command.append(lines[i])
        i += 1
        expected: list[str] = []
        while i < len(lines) and lines[i].startswith("#"):
            text = lines[i][1:]
            if text.startswith("   ") and expected:  # continues the line above
                expected[-1] += " " + text.strip()
            else:
                expected.append(text.strip())
            i += 1
        steps.append(Step(section, "\n".join(command), tuple(expected)))
    return steps


def tour_steps(text: str) -> list[Step]:
    sections = _sections(text)
    steps: list[Step] = []
    for name in TOURS:
        assert name in sections, f"the README has no section {name!r}"
        for block in re.findall(r"^```sh\n(.*?)^```", sections[name], re.MULTILINE | re.DOTALL):
            if block.strip() == "make run":
                continue  # the test's own `evidence serve` stands for it
            steps.extend(_steps(name, block))
    return steps


def _pattern(expected: str) -> re.Pattern[str]:
    parts = re.split(r"(\.\.\.|<[a-z ]+>)", expected)
    body = "".join(".*?" if p == "..." or p.startswith("<") else re.escape(p) for p in parts)
    return re.compile(body)


def _missing(expected: tuple[str, ...], output: str) -> list[str]:
    lines = [line.strip() for line in output.splitlines()]
    missing, position = [], 0
    for want in expected:
        pattern = _pattern(want)
        for n in range(position, len(lines)):
            if pattern.fullmatch(lines[n]):
                position = n + 1
                break
        else:
            missing.append(want)
    return missing


def test_the_tours_are_found() -> None:
    steps = tour_steps(README.read_text())
    assert {s.section for s in steps} == set(TOURS)
    assert sum(1 for s in steps if s.expected) >= 10


def test_expected_output_matching() -> None:
    assert _missing(("ok: 1 entries (log ...)",), "hello\nok: 1 entries (log a/b)\n") == []
    assert _missing(("ok: 2 entries (log ...)",), "ok: 1 entries (log a/b)\n") != []
    assert _missing(("key pinned: <vkey>",), "key pinned: x+1+A\n") == []
    assert _missing(("b", "a"), "a\nb\n") == ["a"]  # in order


def test_the_readme_tours_run_as_written(tmp_path: Path) -> None:
    venv_bin = Path(sys.executable).parent
    workdir = tmp_path / "clone"
    workdir.mkdir()
    steps = tour_steps(README.read_text())
    script = ["set -euo pipefail"]
    for n, step in enumerate(steps):
        command = step.command.replace(".venv/bin/", f"{venv_bin}/")
        # On a line of its own: curl's output may not end with a newline.
        script += [command, f"printf '\\n%s\\n' '{MARKER.format(n)}'"]
    (tmp_path / "tours.sh").write_text("\n".join(script) + "\n")

    with running(workdir, EVIDENCE_DATA_DIR=str(workdir / "evidence-data")) as server:
        env = {k: v for k, v in server.env.items() if k != "EVIDENCE_DATA_DIR"}  # the default
        env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "home/.config"))
        text = (tmp_path / "tours.sh").read_text().replace(README_SERVER, server.url)
        (tmp_path / "tours.sh").write_text(text)
        done = subprocess.run(
            ["bash", str(tmp_path / "tours.sh")],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_SECONDS,
            check=False,
        )
    output = done.stdout + done.stderr
    pieces = re.split(r"^@@readme-step-done (\d+)@@$", done.stdout, flags=re.MULTILINE)
    outputs = {int(pieces[i]): pieces[i - 1] for i in range(1, len(pieces), 2)}
    if done.returncode != 0:
        failed = steps[len(outputs)]
        pytest.fail(
            f"README step failed ({failed.section}): {failed.command}\n"
            f"exit {done.returncode}\n{output[-4000:]}"
        )
    for n, step in enumerate(steps):
        missing = _missing(step.expected, outputs[n])
        assert not missing, (
            f"README step ({step.section}): {step.command}\nexpected {missing}\n"
            f"but it printed:\n{outputs[n]}"
        )

    # What the tours leave behind in the working directory is ignored by git.
    made = sorted(p.name for p in workdir.iterdir() if p.name != "server.log")
    assert "evidence-device" in made
    ignored = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "--no-index", *[f"{m}/" for m in made]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert sorted(ignored.stdout.split()) == sorted(f"{m}/" for m in made), (
        f"left in the clone and not ignored by .gitignore: {made}: {ignored.stdout}"
    )
