"""The README's commands, CI and docs stay in step with the code."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert "pytest" in commands[1] and "pytest" not in commands[0]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci.splitlines()


def test_readme_links_point_at_existing_docs() -> None:
    text = (ROOT / "README.md").read_text()
    for link in re.findall(r"\]\((docs/[^)]+)\)", text):
        path, _, anchor = link.partition("#")
        assert (ROOT / path).is_file(), link
        if anchor:
            # GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens.
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), flags=re.MULTILINE)
            anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
            assert anchor in anchors, link


def test_lint_is_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "check", "src", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hypothesis_runs_one_profile_here_and_in_ci() -> None:
    from hypothesis import settings

    # Loaded by conftest whatever CI says: the same rules in both places.
    current = settings()
    assert settings.get_profile("laneway") is not None
    assert current.deadline is None and current.print_blob and not current.derandomize
