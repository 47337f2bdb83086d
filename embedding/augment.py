"""One augmented view of a poster: the changes a poster goes through between sources.

A year model trained on one collection's posters learns part of that collection's look (print
texture, resolution, colour grading) along with the era. Training on a second, changed view of
every training poster, with the same year, teaches it that these changes say nothing about the
year. Each change is drawn in a range that leaves the poster recognisable:

    crop        80-100 % of the width and height, anywhere (framing differs between sources)
    mirror      half of the posters (layout motifs, not their side, carry the era)
    colour      saturation x0.6-1.4, contrast x0.75-1.25, brightness x0.85-1.15 (fading, grading, scans)
    resolution  shrunk to 45-100 % of its size (thumbnails), then JPEG at quality 25-95
    blur        Gaussian, radius 0-1.2 px (soft scans and upscaled thumbnails)

The draw is seeded by the poster's content hash: the same file always gets the same view, so a
store made with `ingest --augment` is reproducible and an interrupted ingest resumes with identical
vectors.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

AUGMENT = "augment-v1"  # recorded in the embedding spec (decode): another recipe is another embedding


def augment(image: Image.Image, sha256: str) -> Image.Image:
    """The augmented view of an RGB poster whose file has this sha256 (at the poster's own size, not resized)."""
    rng = np.random.default_rng(int(sha256[:12], 16))
    w, h = image.size
    scale = rng.uniform(0.8, 1.0)
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = image.crop((left, top, left + cw, top + ch))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = ImageEnhance.Color(out).enhance(rng.uniform(0.6, 1.4))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.75, 1.25))
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.85, 1.15))
    shrink = rng.uniform(0.45, 1.0)
    out = out.resize((max(16, round(out.width * shrink)), max(16, round(out.height * shrink))), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    out.save(buffer, "JPEG", quality=int(rng.integers(25, 95)))
    buffer.seek(0)
    out = Image.open(buffer).convert("RGB")
    radius = rng.uniform(0.0, 1.2)
    return out.filter(ImageFilter.GaussianBlur(radius)) if radius > 0.3 else out
