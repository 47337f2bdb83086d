"""How the CLI's results read: tables, summary lines and JSON, kept out of cli.py so that it only
parses options and calls the library. Reports that own a table (era, train-year, compare) format
themselves; this module holds what has no report object of its own."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .text_out import as_text, sheet_cell

if TYPE_CHECKING:
    from .regression.dating import DatedPoster
    from .regression.predict import ImageYear
    from .search.neighbours import Neighbour


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
    return _CONTROLS.sub(lambda m: ascii(m.group())[1:-1], as_text(text))  # a file name in any encoding as text


def as_json(data: Any, indent: int | None = 2) -> str:
    """JSON for scripts; indent=None gives one line per result (predict-year over many images)."""
    return as_text(json.dumps(data, ensure_ascii=False, indent=indent))  # image paths in any encoding


def ingest_summary(report_summary: str, collection: str, total: int, rejects: Path | None) -> str:
    lines = [report_summary, f"collection '{collection}' now holds {total} posters"]
    if rejects is not None:
        lines.append(f"rejected rows and posters, with reasons: {rejects}")
    return "\n".join(lines)


def export_summary(written: Path, shape: tuple[int, ...]) -> str:
    return (
        f"wrote {written}: embeddings {shape}, with ids, keys, titles, years (catalog), predicted_years (the year model's, NaN where none), "
        "files, sha256 and every payload (import-embeddings reads it)"
    )


def files_written(files) -> str:
    return "wrote " + ", ".join(str(f) for f in files)


def year_label(year: Any, predicted_year: Any = None) -> str:
    """A film's year as shown everywhere: the catalog's ("1962"), else a prediction marked as one
    ("c. 1962, predicted"), else "?". A catalog year always wins: the two are never mixed."""
    if year is not None:
        return str(year)
    if predicted_year is not None:
        return f"c. {predicted_year}, predicted"
    return "?"


def film_label(query: dict) -> str:
    """'Title (year)' for a stored film, or the image path, on one line."""
    if "image" in query:
        return one_line(query["image"])
    return f"{one_line(query.get('title') or '')} ({year_label(query.get('year'), query.get('predicted_year'))})"


def neighbours_table(query: dict, neighbours: list[Neighbour]) -> str:
    width = max([4, *(len(year_label(n.poster.year, n.poster.predicted_year)) for n in neighbours)])
    lines = [f"nearest to {film_label(query)}:", f"{'rank':>4}  {'similarity':>10}  {'year':>{width}}  title"]
    for n in neighbours:
        lines.append(
            f"{n.rank:>4}  {n.score:>10.3f}  {year_label(n.poster.year, n.poster.predicted_year):>{width}}  {one_line(n.poster.title)}"
        )
    if not neighbours:
        lines.append("(no film matches)")
    return "\n".join(lines)


def neighbours_json(query: dict, neighbours: list[Neighbour]) -> str:
    return as_json({"query": query, "neighbours": [n.as_dict() for n in neighbours]})


def predictions_table(results: list[ImageYear]) -> str:
    """predict-year over images: one row per image, its year and calibrated range (or the error)."""
    if not results:
        return "(no images)"
    first = next((r.prediction for r in results if r.prediction), None)
    head = f"{'year':>5}  {f'{first.coverage:.0%} range' if first else 'range':>11}  image"
    lines = [head]
    for r in results:
        p = r.prediction
        if p is None:
            lines.append(f"{'-':>5}  {'-':>11}  {one_line(r.image)}  (error: {one_line(r.error)})")
        else:
            lines.append(f"{p.year:>5.0f}  {f'{p.low:.0f}-{p.high:.0f}':>11}  {one_line(r.image)}")
    if first is not None:
        lines.append(f"calibrated ranges; the model's test MAE {first.test_mae:.1f} years")
    return "\n".join(lines)


def predictions_csv(results: list[ImageYear]) -> str:
    """The same as CSV text: image, year, low, high, coverage, error (years rounded to whole years)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["image", "year", "low", "high", "coverage", "error"])
    for r in results:
        p = r.prediction
        if p is None:
            writer.writerow([sheet_cell(str(r.image)), "", "", "", "", sheet_cell(r.error)])
        else:
            writer.writerow([sheet_cell(str(r.image)), round(p.year), round(p.low), round(p.high), p.coverage, ""])
    return out.getvalue()


DATED_COLUMNS = ["id", "title", "file", "year", "predicted_year", "predicted_low", "predicted_high"]
DATED_SHOWN = 10  # predictions listed under `predict-year --stored`'s summary; --csv and --json list all


def dated_row(dated: DatedPoster) -> list:
    """One prediction `predict-year --stored` wrote, as a CSV row (DATED_COLUMNS)."""
    d = dated.as_dict()
    return ["" if d[c] is None else sheet_cell(d[c]) for c in DATED_COLUMNS]


def dated_table(first: list[DatedPoster], dated: int) -> str:
    """The first predictions a `predict-year --stored` run wrote, and how many more there are."""
    if not first:
        return ""
    lines = [f"{'year':>5}  {'range':>9}  title"]
    lines += [f"{d.predicted_year:>5}  {f'{d.predicted_low}-{d.predicted_high}':>9}  {one_line(d.title)}" for d in first]
    if dated > len(first):
        lines.append(f"... and {dated - len(first)} more (--csv FILE or --json lists every one)")
    return "\n".join(lines)
