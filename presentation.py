"""How the CLI's results read: tables, summary lines and JSON, kept out of cli.py so that it only
parses options and calls the library. Reports that own a table (era, train-year, compare) format
themselves; this module holds what has no report object of its own."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.nearest import Neighbour
    from store.collection import StoredPoint


def one_line(text: Any) -> str:
    """Text as one line a terminal shows as written: titles may hold newlines or tabs, which would
    break a table row, and escape sequences (ESC, BEL, C1 controls), which a terminal would obey."""
    return _written_out(" ".join(str(text).split()))


def shown(text: Any) -> str:
    """Text for the terminal, its lines kept: every other control character (an escape sequence
    in a stored title or a file name) written out as \\x1b etc., never sent to the terminal."""
    return "\n".join(_written_out(line) for line in str(text).split("\n"))


_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _written_out(text: str) -> str:
    return _CONTROLS.sub(lambda m: ascii(m.group())[1:-1], text)


def as_json(data: Any, indent: int | None = 2) -> str:
    """JSON for scripts; indent=None gives one line per result (predict-year over many images)."""
    return json.dumps(data, ensure_ascii=False, indent=indent)


def ingest_summary(report_summary: str, collection: str, total: int, rejects: Path | None) -> str:
    lines = [report_summary, f"collection '{collection}' now holds {total} posters"]
    if rejects is not None:
        lines.append(f"rejected rows and posters, with reasons: {rejects}")
    return "\n".join(lines)


def export_summary(written: Path, shape: tuple[int, ...]) -> str:
    return f"wrote {written}: embeddings {shape}, with ids, titles, years, files"


def files_written(files) -> str:
    return "wrote " + ", ".join(str(f) for f in files)


def film_query(film: StoredPoint) -> dict:
    """A stored film as the `query` of a search result."""
    return {"id": film.id, "title": film.poster.title, "year": film.poster.year, "file": film.poster.file}


def film_label(query: dict) -> str:
    """'Title (year)' for a stored film, or the image path, on one line."""
    if "image" in query:
        return one_line(query["image"])
    year = query.get("year")
    return f"{one_line(query.get('title') or '')} ({year if year is not None else '?'})"


def neighbours_table(query: dict, neighbours: list[Neighbour]) -> str:
    lines = [f"nearest to {film_label(query)}:", f"{'rank':>4}  {'similarity':>10}  {'year':>4}  title"]
    for n in neighbours:
        lines.append(f"{n.rank:>4}  {n.score:>10.3f}  {n.year if n.year is not None else '?':>4}  {one_line(n.title)}")
    if not neighbours:
        lines.append("(no film matches)")
    return "\n".join(lines)


def neighbours_json(query: dict, neighbours: list[Neighbour]) -> str:
    return as_json({"query": query, "neighbours": [n.as_dict() for n in neighbours]})
