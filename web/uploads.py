"""An uploaded poster: size-limited, decoded with ingest's own guard, as a temporary file.

The file is kept on disk (not only in memory) because the library reads images from paths: its
decompression-bomb guard and the sha256 that excludes a stored poster's own copies from its
results both work on the file's bytes, exactly as at ingest.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..embedding.images import ImageError, NotAnImage, decode_poster

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # a poster scan is a few MB; anything bigger is refused unread


class UploadError(Exception):
    """A bad upload: `status` is the HTTP status to answer with, the message one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def display_name(filename: str | None) -> str:
    """The uploaded file's own name, safe to echo back in a message (no path, no control characters)."""
    name = re.sub(r"[^\w.\- ()]", "_", Path(filename or "").name)[:80].strip()
    return name or "upload"


@contextmanager
def uploaded_image(data: bytes, filename: str | None) -> Iterator[Path]:
    """A temporary file holding `data`, checked to be a decodable image within the limits.

    Raises UploadError (413 too large, 400 empty, 415 not an image, 422 corrupt or too many pixels)."""
    name = display_name(filename)
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(413, f"{name}: {len(data) / 1e6:.1f} MB is over the {MAX_UPLOAD_BYTES // (1024 * 1024)} MB upload limit")
    if not data:
        raise UploadError(400, f"{name}: empty file")
    with tempfile.TemporaryDirectory(prefix="poster-upload-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        try:
            decode_poster(path)  # the same checks as ingest, before any model work
        except ImageError as e:
            message = str(e).replace(str(path), name)
            raise UploadError(415 if isinstance(e, NotAnImage) else 422, message) from None
        yield path


def rename_in_message(message: str, path: Path, filename: str | None) -> str:
    """Library messages name the temporary file: name the user's file instead."""
    return message.replace(str(path), display_name(filename))
