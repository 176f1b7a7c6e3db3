"""The docs stay true: links resolve, guides run, the design page's import arrows are the code's.

- Every relative link of README.md and docs/*.md points at a file that exists (and, for
  ``page.md#anchor``, at a heading of that page).
- No file of the repository cites material users do not have (the team's shared notes).
- The ```python blocks of the guides run top to bottom, in a temporary folder.
- The import arrows listed in docs/design.md are exactly those of the source.
"""
from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: Guides whose python blocks are complete programs (the other pages show fragments).
RUNNABLE = ["api.md", "coming-from-brian2-nest.md", "lm-families.md", "pynn.md"]
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _outside_code(text):
    return re.sub(r"```.*?```", "", text, flags=re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    bad = []
    for target in _LINK.findall(_outside_code(page.read_text())):
        if re.match(r"[a-z]+:", target) or target.startswith("#") and not target[1:]:
            continue                                   # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md":
            headings = {_anchor(h) for h in re.findall(r"^#+ (.*)$", _outside_code(dest.read_text()), re.M)}
            if anchor not in headings:
                bad.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not bad, f"{page.name}: " + "; ".join(bad)


def test_the_link_checker_catches_a_broken_link(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("[ok](p.md) [bad](missing.md) [anchor](p.md#nowhere)\n# Title\n")
    found = [t for t in _LINK.findall(page.read_text())]
    assert found == ["p.md", "missing.md", "p.md#nowhere"]
    assert not (tmp_path / "missing.md").exists() and _anchor("Title") == "title"


def test_no_file_cites_what_users_do_not_have():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    # spelled in pieces so that this file does not cite them itself
    banned = ["../" + "shared", "DESIGN" + ".md", "STYLE" + ".md"]
    hits = []
    for name in files:
        path = REPO / name
        if path.suffix in (".safetensors", ".png", ".h5") or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        hits += [f"{name}: {b}" for b in banned if b in text]
    assert not hits


def _python_blocks(page):
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)


@pytest.mark.slow
@pytest.mark.parametrize("name", RUNNABLE)
def test_guide_examples_run(name, tmp_path, monkeypatch, capsys):
    """Each block runs in the namespace the earlier blocks of the page left, in a temp folder."""
    page = REPO / "docs" / name
    blocks = _python_blocks(page)
    assert len(blocks) >= 5, f"{name}: expected runnable examples"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{name}"}
    for k, code in enumerate(blocks):
        try:
            exec(compile(code, f"{name} block {k + 1}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{name}, python block {k + 1} failed: {type(exc).__name__}: {exc}") from exc


def test_the_families_page_converts_a_qwen3_folder_as_it_says(tmp_path, monkeypatch, capsys):
    """docs/lm-families.md's worked example: its python blocks run in order, its two commands
    through the command line's entry point, which says exact."""
    import shlex

    from spikelm.lm import cli

    page = (REPO / "docs" / "lm-families.md").read_text()
    section = page.split("### Convert a Qwen3 folder", 1)[1].split("\n### ", 1)[0]
    python = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    commands = re.findall(r"^```bash\n(.*?)^```", section, re.S | re.M)[0].strip().splitlines()
    assert len(python) == 2 and len(commands) == 2
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(python[0], "lm-families.md block 1", "exec"), namespace)
    for line in commands:
        argv = shlex.split(line)
        assert argv[0] == "spikelm" and cli.main(argv[1:]) == 0, line
    assert "exact agreement: yes on 2 prompts of 16 tokens" in capsys.readouterr().out
    exec(compile(python[1], "lm-families.md block 2", "exec"), namespace)
    assert capsys.readouterr().out.strip() == "qwen3 64"


_ARROW = re.compile(r"^(\w+) ->(.*)$", re.M)


def _code_arrows():
    """{package: packages it imports} over spikelm's source (errors left out)."""
    arrows = {}
    root = REPO / "spikelm"
    for f in root.rglob("*.py"):
        parts = f.relative_to(root).parts
        here = parts[0] if len(parts) > 1 else parts[0][:-3]
        arrows.setdefault(here, set())
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue                       # relative imports stay inside the package
            for n in names:
                if n.startswith("spikelm."):
                    other = n.split(".")[1]
                    if other not in (here, "errors") and other != "__init__":
                        arrows[here].add(other)
    arrows.pop("errors", None)
    arrows.pop("__init__", None)
    return arrows


def test_design_page_import_arrows_are_the_codes():
    text = (REPO / "docs" / "design.md").read_text()
    block = text.split("Import arrows", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    documented = {a: {x.strip() for x in b.split(",") if x.strip()} for a, b in _ARROW.findall(block)}
    assert documented == _code_arrows()


def _prompt_error(code):
    """The first SyntaxError the interactive prompt gives for ``code`` pasted line by line, or None.

    The prompt compiles what it has after every line (``codeop``, as ``code.InteractiveConsole``
    does): a statement after an indented block with no blank line between them, or a blank line
    inside a block, is a SyntaxError there although the same text runs as a file.
    """
    import codeop

    compiler, buf = codeop.CommandCompiler(), []
    for number, line in enumerate(code.splitlines() + [""], 1):
        buf.append(line)
        try:
            if compiler("\n".join(buf), "<stdin>", "single") is not None:
                buf = []
        except SyntaxError as e:
            return f"line {number}: {e.msg}: {line!r}"
    return None


@pytest.mark.parametrize("name", RUNNABLE)
def test_guide_blocks_paste_into_the_python_prompt(name):
    bad = [f"block {k + 1}, {err}" for k, code in enumerate(_python_blocks(REPO / "docs" / name))
           if (err := _prompt_error(code))]
    assert not bad, f"{name}: " + "; ".join(bad)


def test_the_prompt_check_catches_what_the_prompt_refuses():
    assert _prompt_error("with open('x') as f:\n    f.read()\ny = 1\n") is not None
    assert _prompt_error("def f():\n    a = 1\n\n    return a\n") is not None
    assert _prompt_error("with open('x') as f:\n    f.read()\n\ny = 1\n") is None
