"""Decode whatever a real poster folder holds into the RGB array VGG16 expects.

Resize policy: the whole poster is resized ("squashed") to 224x224, the input size VGG16 was
trained at, without cropping or padding. Posters are about 2:3, so they are narrowed by a third;
nothing of the poster (title, credits, artwork) is cut off, and the distortion is the same for
every poster, which is what matters for comparing them. The image is first composited onto white
if it has transparency, turned upright from its EXIF orientation, and converted to RGB.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from errors import UserError

INPUT_SIZE = 224
# Larger images are refused before decoding: a decompression bomb (a tiny file that expands to
# gigabytes) must not take the machine down. 64 MP is far beyond any poster scan we expect.
MAX_PIXELS = 64_000_000

ImageSource = Union[str, Path, Image.Image, np.ndarray]


class ImageError(UserError):
    """A file or array that cannot be used as a poster image."""


@dataclass(frozen=True)
class DecodedPoster:
    pixels: np.ndarray  # (224, 224, 3) float32, RGB, 0..255, not yet preprocessed for VGG16
    sha256: str  # of the file's bytes, or of the pixels for in-memory images


def decode_poster(source: ImageSource, size: int = INPUT_SIZE) -> DecodedPoster:
    """Load a path, PIL image or array and return it resized for the model, with a content hash."""
    image, digest = load_rgb(source, draft_size=size)
    resized = image.resize((size, size), Image.Resampling.BILINEAR)
    return DecodedPoster(np.asarray(resized, dtype=np.float32), digest)


def load_rgb(source: ImageSource, draft_size: int | None = None) -> tuple[Image.Image, str]:
    """The image upright and in RGB at (about) full size, and the sha256 of its content.

    `draft_size` lets JPEGs decode at a reduced scale that is still at least that size.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{path}: file not found") from None
        except IsADirectoryError:
            raise ImageError(f"{path}: is a folder, not an image") from None
        except OSError as e:
            raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
        image = _open_bytes(data, str(path), draft_size)
        digest = hashlib.sha256(data).hexdigest()
    elif isinstance(source, Image.Image):
        image = source
        # An image opened from a file is that file's content: hash the file, as ingest does.
        origin = Path(getattr(source, "filename", "") or "")
        if origin.is_file():
            digest = hashlib.sha256(origin.read_bytes()).hexdigest()
        else:
            digest = hashlib.sha256(np.asarray(source).tobytes()).hexdigest()
    elif isinstance(source, np.ndarray):
        image = _array_to_image(source)
        digest = hashlib.sha256(np.ascontiguousarray(source).tobytes()).hexdigest()
    else:
        raise ImageError(f"cannot use a {type(source).__name__} as an image (give a path, a PIL image or an array)")
    return _to_rgb(image), digest


def _open_bytes(data: bytes, name: str, draft_size: int | None) -> Image.Image:
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(
                    f"{name}: image is {image.width}x{image.height}, over the {MAX_PIXELS // 1_000_000} MP limit"
                )
            if draft_size:  # JPEGs decode at 1/2..1/8 scale directly, much faster than full size + resize
                image.draft("RGB", (draft_size, draft_size))
            image.load()
            return ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (or a format Pillow cannot read)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: image too large (possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated", ...).
        raise ImageError(f"{name}: corrupt image ({e})") from None


def _array_to_image(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"an image array must be HxW, HxWx3 or HxWx4, not {array.shape}")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0:
            array = array * 255.0  # floats in 0..1, the other common convention
        array = np.clip(array, 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit and float greyscale: stretch the actual range to 8 bits instead of clipping.
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")  # L, P, CMYK, YCbCr, 1 ...
