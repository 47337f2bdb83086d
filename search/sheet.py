"""The PNGs of a search: the contact sheet (the query poster and its neighbours, with title, year and
score under each) and the similarity maps (search/explain.py) drawn over both posters of each pair."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from ..embedding.images import ImageError, ImageSource, load_rgb
from ..errors import BadInput
from ..path_inside import inside
from ..presentation import year_label
from ..safe_io import output_path
from ..store.schema import PosterPayload
from .neighbours import Neighbour

if TYPE_CHECKING:
    from .explain import Explanation

TILE = (200, 300)  # posters are about 2:3
CAPTION_HEIGHT = 72  # three lines: title, year, similarity
GAP = 12


def caption_font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans, which matplotlib (a dependency) ships: it draws the accents and scripts of titles
    from anywhere (Pillow's own font lacks many); Pillow's font where it is not found."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.submodule_search_locations:
        path = Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf" / f"DejaVuSans{'-Bold' if bold else ''}.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def check_posters_dir(folder: Path | None, where: str) -> Path:
    """The poster folder a sheet reads from, or BadInput: a missing folder would draw only grey boxes."""
    if folder is None:
        raise BadInput("--sheet needs the poster folder: pass --posters DIR")
    if not Path(folder).is_dir():
        raise BadInput(f"poster folder {folder} ({where}) not found: pass --posters DIR")
    return Path(folder)


def query_sheet(query: dict, neighbours: list[Neighbour], posters_dir: Path | None, out: Path, explanations=None) -> Path:
    """The sheet of a search result: the query image, or the stored film's poster, then the
    neighbours; with `explanations` (search/explain.py), their similarity maps instead."""
    folder = check_posters_dir(posters_dir, "recorded by ingest")
    source: Path | None  # None: the stored file would be outside the folder (a grey tile)
    if "image" in query:
        source, caption = Path(query["image"]), Path(query["image"]).name
    else:
        year = query.get("year")
        source, caption = (
            inside(folder, PosterPayload(file=query["file"], file_raw=query.get("file_raw")).path),
            f"{query.get('title') or ''} ({year_label(year, query.get('predicted_year'))})",
        )
    if explanations is not None:
        return maps_sheet(source, caption, explanations, folder, out)
    return contact_sheet(source, caption, neighbours, folder, out)


def contact_sheet(query: ImageSource | None, query_caption: str, neighbours: list[Neighbour], posters_dir: Path | None, out: Path) -> Path:
    """Write the sheet to `out`; posters that cannot be found are drawn as grey tiles, not errors."""
    tiles = [(load_image(query), ["query", query_caption])]
    for n in neighbours:
        poster = n.poster
        image = load_image(inside(posters_dir, poster.path)) if posters_dir else None
        tiles.append((image, [f"{n.rank}. {poster.title}", year_label(poster.year, poster.predicted_year), f"similarity {n.score:.3f}"]))
    width = len(tiles) * (TILE[0] + GAP) + GAP
    sheet = Image.new("RGB", (width, TILE[1] + CAPTION_HEIGHT + 2 * GAP), "white")
    draw = ImageDraw.Draw(sheet)
    font = caption_font(12)
    for i, (image, lines) in enumerate(tiles):
        x = GAP + i * (TILE[0] + GAP)
        if image is None:
            draw.rectangle([x, GAP, x + TILE[0], GAP + TILE[1]], fill=(200, 200, 200))
            draw.text((x + 10, GAP + TILE[1] // 2), "poster not found", fill="black", font=font)
        else:
            sheet.paste(ImageOps.pad(image, TILE, color="white"), (x, GAP))
        for j, line in enumerate(lines):
            draw.text((x, GAP + TILE[1] + 6 + j * 18), fit_text(draw, line, font, TILE[0]), fill="black", font=font)
    with output_path(out) as staged:
        sheet.save(staged)
    return out


def load_image(source: ImageSource | None) -> Image.Image | None:
    if source is None:
        return None
    try:
        return load_rgb(source, draft_size=max(TILE))[0]
    except ImageError:
        return None


def fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    text = " ".join(text.split())  # a caption is one line: titles may hold newlines or tabs
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def maps_sheet(query: ImageSource | None, query_caption: str, explanations: list[Explanation], posters_dir: Path, out: Path) -> Path:
    """One PNG: the query, then per neighbour a column with the neighbour's map (top) and the
    query's map for that neighbour (below); each caption says how much of its score the brightest cell holds."""
    query_image = load_image(query)
    font = caption_font(12)
    width = (len(explanations) + 1) * (TILE[0] + GAP) + GAP
    height = 2 * (TILE[1] + GAP) + CAPTION_HEIGHT + 2 * GAP + 20
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    legend = "where each score comes from: its share in each cell of VGG16's 7x7 grid, from the map's smallest share (clear) to its largest (bright)"
    draw.text((GAP, height - 18), fit_text(draw, legend, font, width - 2 * GAP), fill="black", font=font)
    _tile(sheet, draw, query_image, None, GAP, GAP, font)
    draw.text((GAP, GAP + TILE[1] + 6), "query", fill="black", font=font)
    draw.text((GAP, GAP + TILE[1] + 24), fit_text(draw, query_caption, font, TILE[0]), fill="black", font=font)
    for i, e in enumerate(explanations, start=1):
        x = GAP + i * (TILE[0] + GAP)
        n = e.neighbour
        _tile(sheet, draw, load_image(inside(posters_dir, n.poster.path)), e.on_neighbour, x, GAP, font)
        _tile(sheet, draw, query_image, e.on_query, x, 2 * GAP + TILE[1] + CAPTION_HEIGHT, font)
        top = float(e.on_neighbour.max() / max(e.total, 1e-12))
        lines = [
            f"{n.rank}. {n.poster.title}",
            f"{year_label(n.poster.year, n.poster.predicted_year)} · similarity {n.score:.3f}",
            f"brightest cell: {top:.1%} of it",
        ]
        for j, line in enumerate(lines):
            draw.text((x, GAP + TILE[1] + 6 + j * 18), fit_text(draw, line, font, TILE[0]), fill="black", font=font)
        draw.text((x, 2 * GAP + 2 * TILE[1] + CAPTION_HEIGHT + 4), "the query, seen from it", fill="#555", font=font)
    with output_path(out) as staged:
        sheet.save(staged)
    return out


def heat_overlay(image: Image.Image, terms: np.ndarray, size: tuple[int, int] = TILE) -> Image.Image:
    """The poster fitted into `size` with its 7x7 terms over it, from the smallest share (clear) to
    the largest (bright): the model squashes the whole poster to 224 x 224, so each cell covers a
    7th of its width and of its height."""
    from matplotlib import colormaps

    fitted = ImageOps.contain(image, size)
    scaled = (terms - terms.min()) / max(float(terms.max() - terms.min()), 1e-12)
    heat = np.asarray(Image.fromarray(scaled.astype(np.float32), "F").resize(fitted.size, Image.Resampling.BILINEAR))
    colour = (colormaps["inferno"](heat)[:, :, :3] * 255).astype(np.float32)
    alpha = (0.1 + 0.75 * heat)[:, :, None]
    base = np.asarray(fitted.convert("RGB"), np.float32)
    return Image.fromarray(np.uint8(base * (1 - alpha) + colour * alpha))


def _tile(sheet: Image.Image, draw: ImageDraw.ImageDraw, image: Image.Image | None, terms, x: int, y: int, font) -> None:
    if image is None:
        draw.rectangle([x, y, x + TILE[0], y + TILE[1]], fill=(200, 200, 200))
        draw.text((x + 10, y + TILE[1] // 2), "poster not found", fill="black", font=font)
        return
    shown = heat_overlay(image, terms) if terms is not None else ImageOps.contain(image, TILE)
    sheet.paste(shown, (x + (TILE[0] - shown.width) // 2, y + (TILE[1] - shown.height) // 2))
