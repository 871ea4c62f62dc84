"""Issue #14, items 4 and 8 (the parts that live in files, not code): onnx and
matplotlib are ordinary dependencies, the README's Use block runs on files
that exist, and what the commands write by default is ignored by git."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from exact_inj.cli import app as cli

ROOT = Path(__file__).resolve().parent.parent


def test_onnx_and_matplotlib_are_runtime_dependencies_torch_is_not():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    assert {"onnx", "matplotlib"} <= names
    assert "torch" not in names  # heavy: stays optional


def _use_block() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Use", 1)[1].split("```console", 1)[1].split("```", 1)[0]
    return [shlex.split(line[2:].split("#", 1)[0]) for line in block.splitlines() if line.startswith("$ ")]


def test_readme_use_block_names_files_that_exist_or_are_made_before():
    # A path in a command must be in the repository, be written by an earlier
    # command of the block (-o, --certificate, --out, --results), or be an
    # evident placeholder in capitals (NET.onnx, BENCHMARK_FOLDER).
    made: set[str] = set()
    missing = []
    for cmd in _use_block():
        for k, tok in enumerate(cmd[1:], 1):
            if tok.startswith("-") or ":" in tok or re.fullmatch(r"[-0-9/,.]+", tok):
                continue  # an option, a domain, or numbers
            if cmd[k - 1] in ("-o", "--certificate", "--out", "--results"):
                made.add(tok)
                continue
            looks_like_path = "/" in tok or re.search(r"\.(json|onnx|gz|npz|vnnlib|pt)$", tok)
            placeholder = tok.split("/")[0].split(".")[0].isupper()
            if looks_like_path and not placeholder and tok not in made and not (ROOT / tok).exists():
                missing.append(f"{' '.join(cmd)}: {tok}")
    assert not missing, missing


def test_files_the_readme_commands_write_are_ignored_by_git():
    import subprocess

    made = set()
    for cmd in _use_block():
        made |= {tok + ("/" if prev == "--out" else "") for prev, tok in zip(cmd, cmd[1:])
                 if prev in ("-o", "--certificate", "--out", "--results")}
    assert made  # the block does write files (cert.json, layer.json, ...)
    r = subprocess.run(["git", "check-ignore", *sorted(made)], cwd=ROOT, capture_output=True, text=True)
    if r.returncode == 128:
        pytest.skip("not a git checkout")
    ignored = {t.rstrip("/") for t in r.stdout.split()}
    assert ignored == {t.rstrip("/") for t in made}, f"not ignored: {made - set(r.stdout.split())}"


@pytest.mark.parametrize("sub", ["compare", "batch", "experiment"])
def test_default_output_folders_are_ignored_by_git(sub, capsys):
    with pytest.raises(SystemExit):
        cli.main([sub, "--help"] if sub != "experiment" else ["experiment", "gaussian", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    m = re.search(r"--out DIR\s+output folder \(default:?\s*\.?/?([\w.-]+)\)", help_text)
    assert m, help_text
    ignored = (ROOT / ".gitignore").read_text().split()
    assert f"{m.group(1)}/" in ignored
