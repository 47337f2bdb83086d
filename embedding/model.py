"""The VGG16 convolutional base as a poster embedder (imports TensorFlow: load it only when needed)."""

from __future__ import annotations

import os
import sys
from typing import Iterable, Sequence

import numpy as np

from embedding.images import ImageSource, decode_poster
from embedding.spec import STYLE_LAYERS, EmbeddingSpec, resolve_weights, spec_for_weights, style_spec_for_weights
from errors import UserError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_keras():
    """Import Keras (and TensorFlow) with their C++ start-up log lines kept off the terminal.

    TensorFlow's native logger prints before it reads TF_CPP_MIN_LOG_LEVEL, so the only way to
    keep a clean CLI is to point file descriptor 2 elsewhere during the first import.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
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


class Embedder:
    """VGG16 without its classifier, average-pooled: one L2-normalised 512-d vector per poster.

    With `style=True` the same forward pass also gives the style vector (`style_spec`): the mean
    and standard deviation of every channel of one convolutional layer per block, each layer's
    statistics L2-normalised, so that the 64 colour-and-grain channels of block 1 weigh as much
    as the 512 of block 5; then the whole L2-normalised (2,944-d).

    `weights` is "imagenet" (Keras downloads it), a path to a notop .h5 file, or None for
    seeded random weights (tests). The model is built on first use.
    """

    def __init__(self, weights: str | None = "imagenet", style: bool = False):
        self.weights = resolve_weights(weights) if weights is not None else None
        self.spec: EmbeddingSpec = spec_for_weights(self.weights)
        self.style_spec: EmbeddingSpec | None = style_spec_for_weights(self.weights) if style else None
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = _build_vgg16(self.weights, self.spec.input_size, style=self.style_spec is not None)
        return self._model

    def load(self) -> None:
        """Build the model now (import TensorFlow, load weights) rather than on first use."""
        self.model

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(n, 224, 224, 3) RGB 0..255 -> (n, 512) float32 unit vectors."""
        return self.embed_both(pixels)[0]

    def embed_both(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The base vectors and, with style=True, the style vectors (else None), from one forward pass."""
        style_dim = self.style_spec.dim if self.style_spec else 0
        if len(pixels) == 0:
            return np.zeros((0, self.spec.dim), np.float32), np.zeros((0, style_dim), np.float32) if style_dim else None
        preprocess_input = import_keras().applications.vgg16.preprocess_input
        # preprocess_input: RGB->BGR and subtract the ImageNet channel means, as VGG16 was trained.
        outputs = self.model.predict_on_batch(preprocess_input(np.array(pixels, dtype=np.float32)))
        if not self.style_spec:
            return normalise(np.asarray(outputs, dtype=np.float32)), None
        base, *stats = (np.asarray(o, dtype=np.float32) for o in outputs)
        # Per-layer L2 gives each block an equal say (raw block-1 statistics would be drowned out).
        per_layer = [normalise(layer) for layer in stats]
        return normalise(base), normalise(np.concatenate(per_layer, axis=1))

    def embed(self, images: Sequence[ImageSource] | Iterable[ImageSource]) -> np.ndarray:
        """Embed paths, PIL images or arrays; raises ImageError for an unusable one."""
        pixels = [decode_poster(image).pixels for image in images]
        if not pixels:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        return self.embed_pixels(np.stack(pixels))


def normalise(vectors: np.ndarray) -> np.ndarray:
    # Qdrant normalises cosine vectors on insert; doing it here makes local and server stores
    # hold exactly the same numbers, and makes dot product equal cosine similarity.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _build_vgg16(weights: str | None, input_size: int, style: bool = False):
    keras = import_keras()

    if weights is None:
        keras.utils.set_random_seed(0)  # "random" weights must still be the same every time
    try:
        model = keras.applications.VGG16(
            include_top=False, weights=weights, input_shape=(input_size, input_size, 3), pooling="avg"
        )
    except Exception as e:  # Keras raises bare Exception for download failures
        if weights == "imagenet":
            raise UserError(
                "could not download the ImageNet VGG16 weights (no internet?): "
                "pass --weights PATH/TO/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 or set VGG16_WEIGHTS"
            ) from e
        raise UserError(f"could not load VGG16 weights from {weights}: {str(e).splitlines()[0][:200]}") from e
    if not style:
        return model
    # The same network, with more outputs: [(n, 512) pooled block 5, then per style layer
    # (n, 2 * channels) = the mean and standard deviation of each channel over the image].
    stats = []
    for name in STYLE_LAYERS:
        activations = model.get_layer(name).output
        mean = keras.ops.mean(activations, axis=(1, 2))
        std = keras.ops.std(activations, axis=(1, 2))
        stats.append(keras.layers.Concatenate(name=f"{name}_stats")([mean, std]))
    return keras.Model(model.input, [model.output, *stats], name="vgg16_with_style")
