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
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import BadInput
from ..path_inside import open_inside
from ..text_out import as_text

INPUT_SIZE = 224
# Larger images are refused before decoding: a decompression bomb (a tiny file that expands to
# gigabytes) must not take the machine down. 64 MP is far beyond any poster scan we expect.
MAX_PIXELS = 64_000_000
# Larger files are refused before reading: a poster is a few MB at most; a device, a sparse or a
# runaway file must not be read into memory (in every decode worker at once).
MAX_FILE_BYTES = 128 * 1024 * 1024
_MESSAGE_CHARS = 200  # reasons are cut to one readable line

ImageSource = str | Path | Image.Image | np.ndarray


class ImageError(BadInput):
    """A file or array that cannot be used as a poster image."""


class NotAnImage(ImageError):
    """The file is no image at all (or one in a format Pillow cannot read): the page answers 415."""


@dataclass(frozen=True)
class DecodedPoster:
    pixels: np.ndarray  # (224, 224, 3) uint8 RGB; VGG16's preprocessing runs inside the model
    sha256: str  # of the file's bytes, or of the pixels for in-memory images


def decode_poster(source: ImageSource, size: int = INPUT_SIZE, augmented: bool = False, folder: str | None = None) -> DecodedPoster:
    """Load a path, PIL image or array and return it resized for the model, with a content hash.

    `augmented`: the poster's augmented view (embedding/augment.py) instead, decoded at full size
    first (the view shrinks and recompresses it itself); the hash is still the file's.
    `folder`: the (resolved) folder a path must be inside when it is read (read_file).

    Every failure is an ImageError with a one-line reason, whatever raised it inside Pillow
    (broken EXIF data, odd modes, ...): one bad poster is a reject, never an abort.
    """
    try:
        image, digest = load_rgb(source, draft_size=None if augmented else size, folder=folder)
        if augmented:
            from .augment import augment

            image = augment(image, digest)
    except ImageError:
        raise
    except Exception as e:
        raise ImageError(f"{_name(source)}: cannot read image ({_reason(e)})") from None
    try:
        resized = image.resize((size, size), Image.Resampling.BILINEAR)
        return DecodedPoster(np.asarray(resized, dtype=np.uint8), digest)
    except Exception as e:
        raise ImageError(f"{_name(source)}: cannot resize ({_reason(e)})") from None


def read_file(path: Path, limit: int = MAX_FILE_BYTES, folder: str | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; ImageError (one line) otherwise.

    Opened non-blocking and checked on the open descriptor, so a FIFO cannot hang the reader and
    /dev/zero cannot fill the memory, and a folder named like an image says it is a folder. With
    `folder`, the file opened must lie inside it (path_inside.open_inside: no link leads out).
    """
    name = _cut(as_text(path))
    try:
        if folder is None:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        else:
            fd = open_inside(folder, os.fspath(path))
    except FileNotFoundError:
        raise ImageError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a folder, not an image") from None
    except OSError as e:
        raise ImageError(f"{name}: cannot read ({e.strerror or e})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ImageError(f"{name}: is a folder, not an image")
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(f"{name}: not a regular file ({_file_kind(info.st_mode)})")
        if info.st_size > limit:
            raise ImageError(f"{name}: file is {info.st_size / 2**20:.0f} MB, over the {limit / 2**20:.0f} MB limit")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:  # grew while being read
            raise ImageError(f"{name}: file is over the {limit / 2**20:.0f} MB limit")
        return data
    except OSError as e:
        raise ImageError(f"{name}: cannot read ({e.strerror or e})") from None
    finally:
        os.close(fd)


def load_rgb(source: ImageSource, draft_size: int | None = None, folder: str | None = None) -> tuple[Image.Image, str]:
    """The image upright and in RGB at (about) full size, and the sha256 of its content.

    `draft_size` lets JPEGs decode at a reduced scale that is still at least that size.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        data = read_file(path, folder=folder)
        image = open_bytes(data, str(path), draft_size)
        digest = hashlib.sha256(data).hexdigest()
    elif isinstance(source, Image.Image):
        image = source
        # An image opened from a file is that file's content: hash the file, as ingest does.
        origin = Path(getattr(source, "filename", "") or "")
        if origin.is_file():
            digest = hashlib.sha256(read_file(origin)).hexdigest()
        else:
            digest = hashlib.sha256(np.asarray(source).tobytes()).hexdigest()
    elif isinstance(source, np.ndarray):
        image = _array_to_image(source)
        digest = hashlib.sha256(np.ascontiguousarray(source).tobytes()).hexdigest()
    else:
        raise ImageError(f"cannot use a {type(source).__name__} as an image (give a path, a PIL image or an array)")
    try:
        return _to_rgb(image), digest
    except ImageError:
        raise
    except Exception as e:
        raise ImageError(f"{_name(source)}: cannot convert to RGB ({_reason(e)})") from None


def open_bytes(data: bytes, name: str, draft_size: int | None = None) -> Image.Image:
    """An image file's bytes, decoded under the same limits as every poster (ImageError, one line, otherwise)."""
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow's "Corrupt EXIF data" etc.: it goes on, so do we
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(f"{name}: image is {image.width}x{image.height}, over the {MAX_PIXELS // 1_000_000} MP limit")
            if draft_size:  # JPEGs decode at 1/2..1/8 scale directly, much faster than full size + resize
                image.draft("RGB", (draft_size, draft_size))
            image.load()
            return ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise NotAnImage(f"{name}: not an image file (or a format Pillow cannot read)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: image too large (possible decompression bomb)") from None
    except ImageError:
        raise
    except Exception as e:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated", ...),
        # broken EXIF or metadata as almost anything (TypeError, KeyError, struct.error, ...).
        raise ImageError(f"{name}: corrupt image ({_reason(e)})") from None


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
        # Deep greyscale: scale by the bit depth, so white stays white and a faded poster stays
        # faded (stretching each image to its own min..max would change both). 16-bit and
        # 32-bit integer images are read as 16-bit samples (what PNG and TIFF posters hold);
        # float images as 0..1 when they are, else as 0..255.
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            scale = 255.0 if values.size and np.nanmax(values) <= 1.0 else 1.0
        else:
            scale = 255.0 / 65535.0
        scaled = np.clip(np.nan_to_num(values * scale), 0, 255)
        return Image.fromarray(np.rint(scaled).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")  # L, P, CMYK, YCbCr, 1 ...


def _name(source: ImageSource) -> str:
    return _cut(as_text(source)) if isinstance(source, (str, Path)) else "image"


def _cut(text: str) -> str:
    text = " ".join(text.split())  # one line
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"


def _reason(e: BaseException) -> str:
    text = str(e)
    return _cut(f"{type(e).__name__}: {text}" if text else type(e).__name__)


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a file"
