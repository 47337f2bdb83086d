"""One augmented view of a poster: the changes a poster goes through between sources.

A year model trained on one collection's posters learns that collection's look along with the era.
Measured on the two shared collections (docs/year-model.md#the-shipped-model), what separates
sources is less resolution or JPEG (an era poster shrunk to an IMDb thumbnail's 182 pixels is dated
the same) than *which version of the art* a source keeps: TMDB's clean key art against the
theatrical one-sheet with its billing block and tagline, which a model trained on key art reads as
1970s print. Training on a changed view of every training poster, with the same year, teaches it
that such changes say nothing about the year. Each is drawn in a range that leaves the poster
recognisable:

    version     40 %: a billing block of condensed credit lines drawn at the foot, and in most of
                those a tagline at the head; 20 %: the foot (12-18 %) and head (5-10 %) cut off,
                where billing and taglines sit; else the art as it is
    frame       85-100 % of the width and height kept, anywhere; in 20 %, a border of 1-5 % in
                white, black or grey (scans, DVD covers)
    aspect      in 30 %, the height stretched or squeezed by up to 10 % (posters fitted to a box)
    colour      saturation x0.7-1.3, contrast x0.8-1.2, brightness x0.9-1.1 (fading, grading, scans)
    resolution  resized to 150-400 pixels wide, then JPEG at quality 30-95
    blur        Gaussian, radius 0-1 px (soft scans and upscaled thumbnails)

The draw is seeded by the poster's content hash: the same file always gets the same view, so a
store made with `ingest --augment` is reproducible and an interrupted ingest resumes with identical
vectors. The recipe's name is part of the embedding spec (`decode`): views of another recipe
(augment-v1, before: crop, mirror, colour, shrink, blur) are another embedding.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

AUGMENT = "augment-v2"  # recorded in the embedding spec (decode): another recipe is another embedding

# Billing-block vocabulary: only its texture matters (condensed capitals in even lines).
_CREDITS = (
    "DIRECTED BY PRODUCED SCREENPLAY MUSIC STARRING PICTURES PRESENTS A FILM EDITED CASTING COSTUME DESIGNER "
    "EXECUTIVE PRODUCER CINEMATOGRAPHY ENTERTAINMENT PRODUCTION IN ASSOCIATION WITH BASED ON THE NOVEL"
).split()


def augment(image: Image.Image, sha256: str) -> Image.Image:
    """The augmented view of an RGB poster whose file has this sha256 (at its new size, not 224 x 224)."""
    rng = np.random.default_rng(int(sha256[:12], 16))
    version = rng.random()
    out = _with_credits(image, rng) if version < 0.4 else _art_only(image, rng) if version < 0.6 else image
    w, h = out.size
    cw, ch = max(1, round(w * rng.uniform(0.85, 1.0))), max(1, round(h * rng.uniform(0.85, 1.0)))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = out.crop((left, top, left + cw, top + ch))
    if rng.random() < 0.2:
        out = _bordered(out, rng)
    if rng.random() < 0.3:
        out = out.resize((out.width, max(16, round(out.height * rng.uniform(0.9, 1.1)))), Image.Resampling.BILINEAR)
    out = ImageEnhance.Color(out).enhance(rng.uniform(0.7, 1.3))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.8, 1.2))
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.9, 1.1))
    width = int(rng.integers(150, 401))
    out = out.resize((width, max(16, round(out.height * width / out.width))), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    out.save(buffer, "JPEG", quality=int(rng.integers(30, 96)))
    buffer.seek(0)
    out = Image.open(buffer).convert("RGB")
    radius = rng.uniform(0.0, 1.0)
    return out.filter(ImageFilter.GaussianBlur(radius)) if radius > 0.3 else out


def _ink(region: Image.Image) -> tuple[int, int, int]:
    """Dark text on a light area, light text on a dark one, as designers set it."""
    return (20, 20, 20) if np.asarray(region.convert("L")).mean() > 128 else (235, 235, 235)


def _with_credits(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A billing block at the foot (3-6 lines of tall condensed capitals) and maybe a tagline at the head."""
    out = image.copy()
    w, h = out.size
    size = max(7, int(w * rng.uniform(0.03, 0.042)))
    font = ImageFont.load_default(size=size)
    ink = _ink(out.crop((0, int(h * 0.85), w, h)))
    lines = int(rng.integers(3, 7))
    pitch = int(size * 1.6)
    y = h - int(h * rng.uniform(0.02, 0.05)) - lines * pitch
    for _ in range(lines):
        text = " ".join(_CREDITS[i] for i in rng.integers(0, len(_CREDITS), int(rng.integers(8, 15))))
        mask = Image.new("L", (int(ImageDraw.Draw(out).textlength(text, font=font)) + 4, size + 4), 0)
        ImageDraw.Draw(mask).text((2, 0), text, fill=255, font=font)
        target = max(8, int(w * rng.uniform(0.75, 0.92)))
        mask = mask.resize((target, int(size * 1.5)))  # squeezed sideways, stretched up: condensed type
        out.paste(Image.new("RGB", mask.size, ink), ((w - target) // 2, y), mask)
        y += pitch
    if rng.random() < 0.6:
        font = ImageFont.load_default(size=max(7, int(w * rng.uniform(0.035, 0.05))))
        text = " ".join(_CREDITS[i].lower() for i in rng.integers(0, len(_CREDITS), int(rng.integers(3, 7))))
        draw = ImageDraw.Draw(out)
        draw.text(
            ((w - draw.textlength(text, font=font)) / 2, h * rng.uniform(0.02, 0.05)),
            text,
            fill=_ink(out.crop((0, 0, w, h // 10))),
            font=font,
        )
    return out


def _art_only(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = image.size
    return image.crop((0, int(h * rng.uniform(0.05, 0.1)), w, int(h * (1 - rng.uniform(0.12, 0.18)))))


def _bordered(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    pad = max(1, round(image.width * rng.uniform(0.01, 0.05)))
    colour = [(255, 255, 255), (0, 0, 0), (128, 128, 128)][int(rng.integers(0, 3))]
    framed = Image.new("RGB", (image.width + 2 * pad, image.height + 2 * pad), colour)
    framed.paste(image, (pad, pad))
    return framed
