"""Posters made small for grids and the map: a JPEG of the asked width, kept in memory a while.

A phone showing a grid of 48 posters should not fetch 48 full-size files; the page asks for
`?w=240` and gets tens of kilobytes each. Made on request from the poster's bytes (JPEGs decode at
a fraction of their size directly), under the same decoding limits as ingest, and kept in a small
cache keyed by the file's content, so a replaced poster is never served stale.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict

from ..embedding.images import ImageError, open_bytes

CACHE_BYTES = 64 * 1024**2
QUALITY = 82


class Thumbnails:
    def __init__(self, budget: int = CACHE_BYTES) -> None:
        self.budget, self._kept, self._size, self._lock = budget, OrderedDict[tuple[str, int], bytes](), 0, threading.Lock()

    def of(self, data: bytes, width: int) -> bytes | None:
        """The poster `data` at `width` pixels (its aspect kept) as JPEG; None when it is no smaller
        already, or does not decode (then the file itself is sent, as without a width)."""
        key = (hashlib.blake2b(data, digest_size=16).hexdigest(), width)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        try:
            image = open_bytes(data, "poster", draft_size=width)
        except ImageError:
            return None
        if image.width <= width:
            return None
        image = image.convert("RGB")
        image.thumbnail((width, width * 4))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=QUALITY, optimize=True)
        small = out.getvalue()
        with self._lock:
            self._kept[key] = small
            self._size += len(small)
            while self._size > self.budget and self._kept:
                self._size -= len(self._kept.popitem(last=False)[1])
        return small
