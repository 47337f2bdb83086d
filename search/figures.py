"""PNG figures of a whole collection: the poster map (search/poster_map.py) and the era timeline
(search/timeline.py). The pictures of one search (contact sheet, similarity maps) are search/sheet.py's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from ..path_inside import inside
from ..safe_io import output_path
from .poster_map import PosterMap
from .sheet import caption_font, fit_text, load_image
from .timeline import DecadeStep

THUMB = (96, 144)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# Where a label may go around its point (offsets in points, nearest first), as the page's map places them.
LABEL_OFFSETS = [
    (dx * r, dy * r) for r in (6, 14, 24, 36) for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))
]


def place_labels(fig, ax, labels: list[tuple[float, float, str]]) -> list:
    """Each label beside its point where it overlaps no label placed before it (the first free
    place of LABEL_OFFSETS, a thin line back to the point when it had to move away); a label with
    no free place is left out. Returns the placed texts (their extents are checked in tests)."""
    renderer = fig.canvas.get_renderer()
    placed: list = []
    boxes: list = []
    for x, y, text in labels:
        for n, (dx, dy) in enumerate(LABEL_OFFSETS):
            label = ax.annotate(
                text,
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize=10,
                weight="bold",
                ha="left" if dx >= 0 else "right",
                va="bottom" if dy >= 0 else "top",
                bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.7},
            )
            box = label.get_window_extent(renderer).expanded(1.05, 1.1)
            if any(box.overlaps(other) for other in boxes):
                label.remove()
                continue
            boxes.append(box)
            placed.append(label)
            if n >= 8:  # moved away: a thin line back to its point
                ax.annotate(
                    "",
                    (x, y),
                    xytext=(dx, dy),
                    textcoords="offset points",
                    arrowprops={"arrowstyle": "-", "color": "#555", "linewidth": 0.6},
                )
            break
    return placed


def map_figure(result: PosterMap, out: Path, title: str) -> Path:
    """Every poster as a dot coloured by year (grey: no year), the decade centres joined in order."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 10))
    dated = ~np.isnan(result.years)
    ax.scatter(result.xy[~dated, 0], result.xy[~dated, 1], s=3, c="#bbbbbb", linewidths=0)
    points = ax.scatter(
        result.xy[dated, 0],
        result.xy[dated, 1],
        s=4 if len(result.ids) < 20_000 else 1,
        c=result.years[dated],
        cmap="viridis",
        linewidths=0,
        alpha=0.8,
    )
    path = result.decades
    if len(path) > 1:
        ax.plot([d["x"] for d in path], [d["y"] for d in path], color="black", linewidth=1.5, alpha=0.8)
    for d in path:
        ax.scatter([d["x"]], [d["y"]], s=40, color="white", edgecolors="black", zorder=3)
    fig.colorbar(points, ax=ax, fraction=0.03, pad=0.01, label="release year")
    ax.set(
        title=f"{title}: {len(result.ids):,} posters by their VGG16 embedding (t-SNE); the line joins the decades' centres",
        xticks=[],
        yticks=[],
    )
    ax.set_aspect("equal")
    fig.tight_layout()
    place_labels(fig, ax, [(d["x"], d["y"], f"{d['decade']}s") for d in path])
    with output_path(out) as staged:
        fig.savefig(staged, dpi=110)
    plt.close(fig)
    return Path(out)


def timeline_figure(steps: list[DecadeStep], posters_dir: Path | None, out: Path, title: str) -> Path:
    """A row per decade: its figures, its most typical posters, then its least typical ones."""
    per = max((len(s.typical) for s in steps), default=3)
    gap, label_width, caption = 8, 170, 30
    row_height = THUMB[1] + caption + gap
    width = label_width + 2 * per * (THUMB[0] + gap) + 3 * gap
    sheet = Image.new("RGB", (width, 40 + row_height * len(steps)), "white")
    draw = ImageDraw.Draw(sheet)
    font, bold = caption_font(11), caption_font(14, bold=True)
    draw.text(
        (gap, 10), f"{title}: most typical posters of each decade (nearest its centre) | least typical (farthest)", fill="black", font=bold
    )
    for r, step in enumerate(steps):
        y = 40 + r * row_height
        moved = f"moved {step.moved:.3f}" if step.moved is not None else "first decade"
        for j, line in enumerate([f"{step.decade}s", f"{step.posters} posters", f"cohesion {step.cohesion:.3f}", moved]):
            draw.text((gap, y + 10 + 20 * j), line, fill="black", font=bold if j == 0 else font)
        for k, poster in enumerate([*step.typical, *step.atypical]):
            x = label_width + k * (THUMB[0] + gap) + (2 * gap if k >= len(step.typical) else 0)
            image = load_image(inside(posters_dir, poster.path)) if posters_dir else None
            if image is None:
                draw.rectangle([x, y, x + THUMB[0], y + THUMB[1]], fill=(200, 200, 200))
            else:
                sheet.paste(ImageOps.pad(image, THUMB, color="white"), (x, y))
            draw.text((x, y + THUMB[1] + 2), fit_text(draw, poster.title, font, THUMB[0]), fill="black", font=font)
            draw.text((x, y + THUMB[1] + 15), f"{poster.year} · {poster.similarity:.3f}", fill="#555", font=font)
        divider = label_width + len(step.typical) * (THUMB[0] + gap) + gap // 2
        draw.line([divider, y, divider, y + THUMB[1]], fill="#999", width=2)
    with output_path(out) as staged:
        sheet.save(staged)
    return Path(out)
