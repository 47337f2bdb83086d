"""One PNG showing the query poster and its neighbours, with title, year and score under each."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from embedding.images import ImageError, ImageSource, load_rgb
from errors import UserError
from search.nearest import Neighbour

TILE = (200, 300)  # posters are about 2:3
CAPTION_HEIGHT = 54
GAP = 12


def contact_sheet(query: ImageSource, query_caption: str, neighbours: list[Neighbour], posters_dir: Path | None, out: Path) -> Path:
    """Write the sheet to `out`; posters that cannot be found are drawn as grey tiles, not errors."""
    tiles = [(_load(query), ["query", query_caption])]
    for n in neighbours:
        image = _load(posters_dir / n.file) if posters_dir else None
        tiles.append((image, [f"{n.rank}. {n.title}", f"{n.year if n.year is not None else '?'}  ·  similarity {n.score:.3f}"]))
    width = len(tiles) * (TILE[0] + GAP) + GAP
    sheet = Image.new("RGB", (width, TILE[1] + CAPTION_HEIGHT + 2 * GAP), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    for i, (image, lines) in enumerate(tiles):
        x = GAP + i * (TILE[0] + GAP)
        if image is None:
            draw.rectangle([x, GAP, x + TILE[0], GAP + TILE[1]], fill=(200, 200, 200))
            draw.text((x + 10, GAP + TILE[1] // 2), "poster not found", fill="black", font=font)
        else:
            sheet.paste(ImageOps.pad(image, TILE, color="white"), (x, GAP))
        for j, line in enumerate(lines):
            draw.text((x, GAP + TILE[1] + 6 + j * 18), _fit(draw, line, font, TILE[0]), fill="black", font=font)
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: folder {out.parent} does not exist")
    sheet.save(out)
    return out


def _load(source: ImageSource) -> Image.Image | None:
    try:
        return load_rgb(source, draft_size=max(TILE))[0]
    except ImageError:
        return None


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
