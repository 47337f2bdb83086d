"""Keras, imported on the backend asked for, quietly: the one thing modules that build or load a
Keras model (the embedder, the year head, a weights download) need from each other, without
importing the whole embedder."""

from __future__ import annotations

import os
import sys

from embedding.backend import BACKEND_ENV
from errors import UserError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_keras(backend: str | None = None):
    """Import Keras on `backend` (default: $KERAS_BACKEND, else TensorFlow), with the C++ start-up
    log lines of TensorFlow kept off the terminal.

    Keras picks its backend once per process, at import: asking for another one afterwards is a
    clear error rather than a silent fallback. TensorFlow's native logger prints before it reads
    TF_CPP_MIN_LOG_LEVEL, so the only way to keep a clean CLI is to point file descriptor 2
    elsewhere during the first import.
    """
    if "keras" in sys.modules:
        import keras  # already imported (sys.modules): nothing is printed

        if backend and keras.backend.backend() != backend:
            raise UserError(
                f"Keras is already running on {keras.backend.backend()} in this process; "
                f"the {backend} backend needs a new process (set KERAS_BACKEND={backend})"
            )
        return keras
    os.environ[BACKEND_ENV] = backend or os.environ.get(BACKEND_ENV) or "tensorflow"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return keras
