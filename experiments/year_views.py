"""Embed a seeded subset of a poster collection under several *views* of each poster, for the year experiments.

Views: the stored input (whole poster squashed to 224x224), its mirror image, three 224x224 crops
along the height of the poster resized to width 224 (aspect ratio kept), and two degradations a
poster from another source may carry (downscaled + strong JPEG + blur; faded colours). Writes one
.npz with the base and style vector of every view, resumable per view (a view already in the file is
skipped). Progress (count, rate, ETA) goes to stderr.

    python -m experiments.year_views --collection ../shared/data/posters-era --n 800 --out /tmp/views-era.npz --weights W
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import sys
import time
from collections.abc import Set as AbstractSet
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from poster_search.embedding.augment import augment
from poster_search.embedding.images import load_rgb

SIZE = 224


def squash(img: Image.Image) -> list[Image.Image]:
    return [img.resize((SIZE, SIZE), Image.Resampling.BILINEAR)]


def flip(img: Image.Image) -> list[Image.Image]:
    return [img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((SIZE, SIZE), Image.Resampling.BILINEAR)]


def crops(img: Image.Image) -> list[Image.Image]:
    """Width to 224 keeping the aspect ratio, then top, middle and bottom 224x224 squares."""
    w, h = img.size
    height = max(SIZE, round(h * SIZE / w))
    scaled = img.resize((SIZE, height), Image.Resampling.BILINEAR)
    tops = [0, (height - SIZE) // 2, height - SIZE]
    return [scaled.crop((0, t, SIZE, t + SIZE)) for t in tops]


def degrade(img: Image.Image) -> list[Image.Image]:
    """What a thumbnail from another source looks like: half size, JPEG quality 25, slight blur."""
    small = img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=25)
    buffer.seek(0)
    return squash(Image.open(buffer).convert("RGB").filter(ImageFilter.GaussianBlur(1.0)))


def faded(img: Image.Image) -> list[Image.Image]:
    """A faded print or scan: less saturation and contrast, a little brighter."""
    out = ImageEnhance.Color(img).enhance(0.6)
    out = ImageEnhance.Contrast(out).enhance(0.8)
    return squash(ImageEnhance.Brightness(out).enhance(1.1))


def augmented(img: Image.Image) -> list[Image.Image]:
    """The view `ingest --augment` stores (embedding/augment.py), seeded by the pixels here (no file hash at hand).

    The year-experiment figures in docs/year-model.md were made with this script's first version, which
    drew the same recipe from the same ranges."""
    return squash(augment(img, hashlib.sha256(img.tobytes()[:65536]).hexdigest()))


VIEWS = {"flip": flip, "crops": crops, "degrade": degrade, "faded": faded, "augment": augmented}


def subset(catalog: Path, n: int, exclude: AbstractSet[str] = frozenset(), posters: Path | None = None) -> list[dict]:
    """A stable subset: the n rows whose file name hashes lowest (no seed, no order dependence),
    leaving out posters whose content sha256 is in `exclude` (e.g. a model's trained_on.txt)."""
    with catalog.open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("release_year")]
    rows.sort(key=lambda r: hashlib.sha256(r["filename"].encode()).hexdigest())
    if exclude:
        assert posters is not None, "excluding trained posters needs their folder"
        rows = [r for r in rows if hashlib.sha256((posters / r["filename"]).read_bytes()).hexdigest() not in exclude]
    return rows[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=Path, required=True, help="folder with movies.csv and posters/")
    parser.add_argument("--n", type=int, default=800)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--exclude", type=Path, help="file of sha256 keys to leave out (a model's trained_on.txt)")
    parser.add_argument("--views", nargs="+", default=list(VIEWS), choices=list(VIEWS))
    args = parser.parse_args()

    from poster_search.embedding.model import Embedder

    exclude = set(args.exclude.read_text().split()) if args.exclude else set()
    rows = subset(args.collection / "movies.csv", args.n, exclude, args.collection / "posters")
    done = dict(np.load(args.out, allow_pickle=False)) if args.out.exists() else {}
    images, digests = [], []
    for r in rows:
        img, digest = load_rgb(args.collection / "posters" / r["filename"])
        images.append(img)
        digests.append(digest)
    meta = {
        "files": np.array([r["filename"] for r in rows]),
        "years": np.array([float(r["release_year"]) for r in rows]),
        "sha256": np.array(digests),
    }
    embedder = Embedder(args.weights, style=True)
    for view, make in VIEWS.items():
        if f"{view}_style" in done or view not in args.views:
            continue
        base_out, style_out = [], []
        started = time.perf_counter()
        for start in range(0, len(images), args.batch):
            chunk = images[start : start + args.batch]
            pieces = [make(img) for img in chunk]
            per = len(pieces[0])
            pixels = np.stack([np.asarray(p, dtype=np.float32) for ps in pieces for p in ps])
            base, style = embedder.embed_both(pixels)
            assert style is not None  # the embedder was made with the style vector
            # several crops of one poster: average them, then re-normalise
            base = base.reshape(len(chunk), per, -1).mean(axis=1)
            style = style.reshape(len(chunk), per, -1).mean(axis=1)
            base_out.append(base / np.linalg.norm(base, axis=1, keepdims=True))
            style_out.append(style / np.linalg.norm(style, axis=1, keepdims=True))
            n_done = start + len(chunk)
            rate = n_done / (time.perf_counter() - started)
            print(
                f"{view}: {n_done}/{len(images)} {rate:.1f} posters/s ETA {(len(images) - n_done) / rate:.0f}s", file=sys.stderr, flush=True
            )
        done[f"{view}_base"], done[f"{view}_style"] = np.concatenate(base_out), np.concatenate(style_out)
        np.savez(args.out, **meta, **{k: v for k, v in done.items() if k not in meta})  # type: ignore[arg-type]  # numpy's stub: a ** dict could name allow_pickle
    print(f"wrote {args.out}: views {', '.join(args.views)}", file=sys.stderr)


if __name__ == "__main__":
    main()
