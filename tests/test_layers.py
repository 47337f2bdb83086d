"""The boundary between the front object and the layers over it: cli.py and web/ parse and
render, and everything they do goes through poster_search.Posters (api.py). A new import of a
stage module (ingest/, search/, regression/, store/ beyond its names) into either fails here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What the CLI and the page may import from the package: the front object and its results, the
# error kinds and path checks, how things read, the shared defaults, the schema's names and the
# year head's settings (their options), the store options' parser, safe output files, each other.
ALLOWED = {
    "api",
    "results",
    "errors",
    "presentation",
    "defaults",
    "store.schema",
    "store.connection",
    "regression.config",
    "embedding.backend",  # the help text of --backend and --precision (nothing is imported to compute it)
    "embedding.images",  # an upload is checked with ingest's own image guard before any work (web/uploads.py)
    "safe_io",
    "web.app",
    "web.render",
    "web.guards",
    "web.uploads",
    "web.thumbs",
    "web.server",
}


def package_imports(path: Path) -> set[str]:
    """The package modules a file imports, as paths from the package's root ("store.schema")."""
    package = path.relative_to(ROOT).parent.parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - node.level + 1])
            module = [*base, *(node.module.split(".") if node.module else [])]
            if node.module:
                found.add(".".join(module))
            else:  # `from . import x`: x, where it is a module
                names = [".".join([*module, alias.name]) for alias in node.names]
                found.update(n for n in names if (ROOT / f"{n.replace('.', '/')}.py").is_file() or (ROOT / n.replace(".", "/")).is_dir())
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("poster_search."):
            found.add((node.module or "").removeprefix("poster_search."))
    return found


def test_the_cli_and_the_page_reach_the_library_only_through_the_front_object():
    layers = [ROOT / "cli.py", *sorted((ROOT / "web").glob("*.py"))]
    reached = {path.relative_to(ROOT).as_posix(): package_imports(path) - ALLOWED - {"", "__init__"} for path in layers}
    assert {file: modules for file, modules in reached.items() if modules} == {}
    assert "api" in package_imports(ROOT / "cli.py") and "api" in package_imports(ROOT / "web" / "app.py")  # the check can fail
