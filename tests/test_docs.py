"""The documentation covers the CLI, and every pointer into it lands (issue 30; as sqlite-utils' test_docs.py).

- Every command of `cli.py` and every option of it (walked from the Typer app, so a command or option
  added later is checked without editing this file) is named in README.md or docs/*.md: a command
  anywhere, an option in a section (heading to heading) that names its command, as a usage line
  `python cli.py NAME [--option ...]` or in backticks `` `NAME --option` ``; the store options,
  shared by every command that opens the store, anywhere.
- Every section reference in code and docs lands: README or a docs file followed by a comma and
  a section title (in asterisks, quotes, or up to a closing parenthesis), a docs path with a
  heading anchor, and every relative Markdown link (its file, and its heading if it names one).
- Benchmarks and experiments have one way to run, `python -m bench.NAME` / `python -m
  experiments.NAME` from the project folder: none changes sys.path, each is named in the docs,
  and every such command in the docs names a module that exists.

Each test lists everything it finds wrong, one per line, so that all of it is fixed in one go.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import typer

from poster_search import cli

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()
TEXT_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".toml", ".cfg", ".txt", ".html", ".js", ".css", ".sh"}
TEXT_NAMES = {"Dockerfile", "run"}
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def doc_files() -> list[Path]:
    """Where the CLI is documented: the README and docs/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@cache
def project_files() -> tuple[Path, ...]:
    """The project's own text files: what git tracks or would track; every file outside SKIP_DIRS without git."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.splitlines()
        paths = [ROOT / name for name in listed]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked archive)
        paths = [p for p in ROOT.rglob("*") if not SKIP_DIRS & set(p.relative_to(ROOT).parts)]
    return tuple(
        p
        for p in sorted(set(paths))
        if p.is_file() and not p.is_symlink() and p.resolve() != THIS and (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES)
    )


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --- Markdown: sections and GitHub's heading anchors -----------------------------------------


def markdown_sections(text: str) -> list[tuple[str, str]]:
    """(heading, the section's text including the heading) for each heading outside code blocks; the
    text before the first heading is a section with heading ''."""
    sections: list[tuple[str, str]] = []
    heading, fenced = "", False
    lines: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else re.match(r" {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            sections.append((heading, "\n".join(lines)))
            heading, lines = match.group(1), []
        lines.append(line)
    sections.append((heading, "\n".join(lines)))
    return sections


def plain(heading: str) -> str:
    """A heading as it reads: links, code and emphasis marks dropped."""
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation other than - and _ dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", plain(heading).strip().lower()).replace(" ", "-")


@cache
def headings(path: Path) -> tuple[list[str], set[str]]:
    """A Markdown file's headings (as they read) and their anchors (repeats numbered as GitHub does)."""
    titles = [plain(h) for h, _ in markdown_sections(path.read_text(encoding="utf-8")) if h]
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for title in titles:
        base = anchor(title)
        anchors.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return titles, anchors


# --- 1. every command and option is documented ------------------------------------------------


def names_command(text: str, command: str) -> bool:
    name = re.escape(command)
    return re.search(rf"(?:cli\.py|poster-search)\s+{name}(?![\w-])|`{name}(?![\w-])", text) is not None


def names_option(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def undocumented() -> list[str]:
    """'COMMAND' or 'COMMAND --option' for everything of the CLI that the docs do not name."""
    group = typer.main.get_command(cli.app)
    sections = [text for path in doc_files() for _, text in markdown_sections(path.read_text(encoding="utf-8"))]
    everything = "\n".join(sections)
    shared = {p.name for p in cli._params_of(cli._store_options)}  # the store options: one description serves every command
    missing = []
    for name, command in sorted(group.commands.items()):  # type: ignore[attr-defined]
        if not names_command(everything, name):
            missing.append(name)
        own = "\n".join(text for text in sections if names_command(text, name))
        for param in command.params:
            # an option is documented under any of its names (-k or --k); a flag's --no-x goes with its --x
            if param.param_type_name == "option" and not any(
                names_option(everything if param.name in shared else own, option) for option in param.opts
            ):
                missing.append(f"{name} {'/'.join(param.opts)}")
    return missing


def test_every_command_and_option_is_documented():
    missing = undocumented()
    assert not missing, (
        "not named in README.md or docs/*.md (an option: in a section that names its command, e.g. its usage line "
        "`python cli.py COMMAND [--option ...]`):\n  " + "\n  ".join(missing)
    )


def test_the_check_for_documented_options_can_fail():
    sections = "## Ingest\n\n```\npython cli.py ingest --catalog CSV [--limit N]\n```\n\n## Other\n\n`--workers N`\n"
    own = "\n".join(text for _, text in markdown_sections(sections) if names_command(text, "ingest"))
    assert names_option(own, "--limit") and names_option(own, "--catalog")
    assert not names_option(own, "--workers")  # named, but not where ingest is
    assert not names_option(own, "--lim") and not names_option("--limit-rows", "--limit")
    assert names_command("python cli.py map --out m.png", "map") and not names_command("the map of posters", "map")
    assert not names_command("`map-all`", "map")


# --- 2. every pointer to a section lands ------------------------------------------------------

# "README, *Installed form*", "docs/store.md, "Schema"", "(README, Search)"
SECTION_REFERENCE = re.compile(
    r"(?<![\w/.])(README(?:\.md)?|docs/[\w.-]+\.md),\s+(?:\*([^*\n]+)\*|\"([^\"\n]+)\"|([A-Z][^)\"'*\n,;]*?)(?=\)))"
)
# docs/store.md#a-full-disk, README.md#data
ANCHOR_REFERENCE = re.compile(r"(?<![\w/.])((?:docs/)?[\w.-]+\.md)#([\w-]+)")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def broken_references() -> list[str]:
    """'file:line: reference (what is wrong)' for every pointer that does not land."""
    broken = []
    for path in project_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{relative(path)}:{number}"
            for match in SECTION_REFERENCE.finditer(line):
                target = ROOT / ("README.md" if match.group(1).startswith("README") else match.group(1))
                section = next(g for g in match.groups()[1:] if g).strip()
                if not target.is_file():
                    broken.append(f"{where}: {match.group(0)} ({relative(target)} does not exist)")
                elif not any(h.lower().startswith(section.lower()) for h in headings(target)[0]):
                    broken.append(f"{where}: {match.group(0)} (no section '{section}' in {relative(target)})")
            for match in ANCHOR_REFERENCE.finditer(line):
                if path.suffix == ".md" and (line[: match.start()].endswith("](") or not match.group(1).startswith(("docs/", "README.md"))):
                    continue  # a Markdown link's target, relative to its file: checked below
                broken += check_target(where, ROOT / match.group(1), match.group(2), match.group(0))
            if path.suffix == ".md":
                for match in MARKDOWN_LINK.finditer(line):
                    link = match.group(1)
                    if re.match(r"[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
                        continue
                    file, _, fragment = link.partition("#")
                    broken += check_target(where, (path.parent / file) if file else path, fragment, link)
    return broken


def check_target(where: str, target: Path, fragment: str, shown: str) -> list[str]:
    target = target.resolve()
    if not target.exists():
        return [f"{where}: {shown} (no such file)"]
    if fragment and target.suffix == ".md" and fragment not in headings(target)[1]:
        return [f"{where}: {shown} (no heading with anchor #{fragment} in {target.relative_to(ROOT).as_posix()})"]
    return []


def test_every_section_reference_points_to_a_section_that_exists():
    broken = broken_references()
    assert not broken, "references to sections or files that do not exist:\n  " + "\n  ".join(broken)


def test_anchors_are_githubs_and_the_reference_patterns_find_what_they_should():
    assert anchor("Several collections, and what transfers (content split, three seeds)") == (
        "several-collections-and-what-transfers-content-split-three-seeds"
    )
    assert anchor("Fine-tuning block 5") == "fine-tuning-block-5"
    assert anchor("Earlier results on `../shared/data/posters-era` (80/20 split)") == "earlier-results-on-shareddataposters-era-8020-split"
    assert anchor("Why `block5_conv3`?") == "why-block5_conv3"
    found = [m.group(0) for m in SECTION_REFERENCE.finditer('(README, Search) (see README, "Web page") README, *Install*: x')]
    assert found == ["README, Search", 'README, "Web page"', "README, *Install*"]
    assert [m.groups() for m in ANCHOR_REFERENCE.finditer("see docs/web.md#safety.")] == [("docs/web.md", "safety")]
    titles, anchors = headings(ROOT / "README.md")
    assert "Quick start" in titles and "quick-start" in anchors
    assert not any(h.lower().startswith("backends") for h in titles)  # a section that is gone is reported as gone


# --- 3. benchmarks and experiments: one way to run them ------------------------------------


def test_benchmarks_and_experiments_run_as_modules_and_are_documented():
    scripts = [
        p for folder in ("bench", "experiments") for p in sorted((ROOT / folder).glob("*.py")) if p.stem not in ("__init__", "common")
    ]
    assert len(scripts) >= 10  # the check can fail: it found the files
    docs = "\n".join(p.read_text(encoding="utf-8") for p in [*doc_files(), ROOT / "experiments" / "README.md"])
    problems = []
    for script in scripts:
        source = script.read_text(encoding="utf-8")
        module = f"{script.parent.name}.{script.stem}"
        if "sys.path" in source or re.search(r"^\s*(from common import|import common\b)", source, re.M):
            problems.append(f"{relative(script)}: changes sys.path or imports `common` by itself (run it as `python -m {module}`)")
        if module not in docs and relative(script) not in docs:
            problems.append(f"{relative(script)}: not named in README.md, docs/*.md or experiments/README.md")
    for path in project_files():
        if path.suffix not in (".md", ".py"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for folder, name in re.findall(r"python3? -m (bench|experiments)\.([a-z_][a-z0-9_]*)\b", line):
                if not (ROOT / folder / f"{name}.py").is_file():
                    problems.append(f"{relative(path)}:{number}: python -m {folder}.{name} (no {folder}/{name}.py)")
            for folder, name in re.findall(r"python3? (?:\S*/)?(bench|experiments)/([a-z_][a-z0-9_]*)\.py", line):
                problems.append(f"{relative(path)}:{number}: {folder}/{name}.py run as a file (write `python -m {folder}.{name}`)")
    assert not problems, "benchmarks and experiments:\n  " + "\n  ".join(problems)


def test_every_json_option_prints_json():
    """`--json` means one thing across the CLI: a flag that prints JSON (a file is written by a separately named option)."""
    group = typer.main.get_command(cli.app)
    takes_a_value = [
        f"{name} --json"
        for name, command in sorted(group.commands.items())
        for param in command.params
        if "--json" in getattr(param, "opts", ()) and not getattr(param, "is_flag", False)
    ]
    assert not takes_a_value, "--json options that take a value instead of printing JSON:\n  " + "\n  ".join(takes_a_value)
