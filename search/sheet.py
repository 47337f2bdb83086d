"""One PNG showing the query poster and its neighbours, with title, year and score under each."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from embedding.images import ImageError, ImageSource, load_rgb
from errors import UserError, check_output_file
from search.nearest import Neighbour

TILE = (200, 300)  # posters are about 2:3
CAPTION_HEIGHT = 54
GAP = 12


def check_sheet_path(out: Path) -> None:
    """UserError unless `out` names an image file Pillow can write (checked before any search)."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--sheet {out} is a folder; give a file name such as sheet.png")
    extension = out.suffix.lower()
    if Image.registered_extensions().get(extension) not in Image.SAVE:
        raise UserError(f"--sheet {out}: not an image file name; give one ending in .png (or .jpg)")
    check_output_file(out, "--sheet")


def check_posters_dir(folder: Path | None, where: str) -> Path:
    """The poster folder a sheet reads from, or UserError: a missing folder would draw only grey boxes."""
    if folder is None:
        raise UserError("--sheet needs the poster folder: pass --posters DIR")
    if not Path(folder).is_dir():
        raise UserError(f"poster folder {folder} ({where}) not found: pass --posters DIR")
    return Path(folder)


def query_sheet(query: dict, neighbours: list[Neighbour], posters_dir: Path | None, out: Path) -> Path:
    """The sheet of a search result: the query image, or the stored film's poster, then the neighbours."""
    folder = check_posters_dir(posters_dir, "recorded by ingest")
    if "image" in query:
        source, caption = Path(query["image"]), Path(query["image"]).name
    else:
        year = query.get("year")
        source, caption = folder / query["file"], f"{query.get('title') or ''} ({year if year is not None else '?'})"
    return contact_sheet(source, caption, neighbours, folder, out)


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
    text = " ".join(text.split())  # a caption is one line: titles may hold newlines or tabs
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
