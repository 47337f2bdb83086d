"""Keras, imported on the backend asked for, quietly: the one thing modules that build or train a
Keras model (the year head's trainer, the Keras embedder of `ingest --backend`) need from each
other, without importing the whole embedder. Keras and TensorFlow are the `train` extra: without
them, this is where the one line saying what to install comes from."""

from __future__ import annotations

import os
import sys

from ..errors import BadInput, NotInstalled
from .backend import BACKEND_ENV

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


TRAIN_EXTRA = 'pip install "poster-search[train]"  (in a checkout: pip install -r requirements.txt)'


def require_keras(what: str = "this command") -> None:
    """NotInstalled, saying what to install, unless Keras and a backend for it can be imported."""
    from importlib.util import find_spec

    def absent(name: str) -> bool:
        try:
            return find_spec(name) is None
        except (ImportError, ValueError):  # a finder that refuses it, or a half-imported module
            return True

    missing = [name for name in ("keras", os.environ.get(BACKEND_ENV) or "tensorflow") if absent(name)]
    if missing:
        raise NotInstalled(f"{what} needs {' and '.join(missing)}, which this installation leaves out: {TRAIN_EXTRA}")


def import_keras(backend: str | None = None, what: str = "this command"):
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
            raise BadInput(
                f"Keras is already running on {keras.backend.backend()} in this process; "
                f"the {backend} backend needs a new process (set KERAS_BACKEND={backend})"
            )
        return keras
    # Keras reads its backend from the environment at import, once; the variable is set for the
    # import only, so that no process this one starts (ingest, a notebook's subprocess) inherits a
    # backend it never asked for.
    asked = os.environ.get(BACKEND_ENV)
    os.environ[BACKEND_ENV] = backend or asked or "tensorflow"
    saved = os.dup(2)
    try:
        require_keras(what)
        sys.stderr.flush()
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        if asked is None:
            os.environ.pop(BACKEND_ENV, None)
        else:
            os.environ[BACKEND_ENV] = asked
    return keras
