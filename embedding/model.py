"""The VGG16 convolutional base as a poster embedder (imports TensorFlow: load it only when needed)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import BadInput, Damaged
from .backend import Runtime, resolve_runtime
from .images import ImageSource, decode_poster
from .keras_import import import_keras
from .spec import STYLE_LAYERS, EmbeddingSpec, resolve_weights, spec_for_weights, style_spec_for_weights
from .vectors import NotAVector, as_uint8, style_vectors, unit_vectors


class Embedder:
    """VGG16 without its classifier, average-pooled: one L2-normalised 512-d vector per poster.

    With `style=True` the same forward pass also gives the style vector (`style_spec`): the mean
    and standard deviation of every channel of one convolutional layer per block, each layer's
    statistics L2-normalised, so that the 64 colour-and-grain channels of block 1 weigh as much
    as the 512 of block 5; then the whole L2-normalised (2,944-d).

    `weights` is "imagenet" (Keras downloads it), a path to a notop .h5 file, or None for
    seeded random weights (tests). `backend` and `precision` are as for `--backend` and
    `--precision` (embedding/backend.py); resolving them imports nothing. The model is built on
    first use. It takes uint8 RGB batches: VGG16's preprocessing (RGB->BGR, ImageNet channel
    means) is its first layer, so it runs on the device and only bytes cross to it.
    """

    def __init__(
        self,
        weights: str | None = "imagenet",
        style: bool = False,
        backend: str | None = None,
        precision: str | None = None,
        augmented: bool = False,
    ):
        self.weights = resolve_weights(weights) if weights is not None else None
        self.runtime: Runtime = resolve_runtime(backend, precision, keras_only=True)
        # augmented: ingest stores each poster's augmented view (embedding/augment.py), for training
        # a year model; it is another embedding (its spec says so), kept in a collection of its own.
        self.augmented = augmented
        self.spec: EmbeddingSpec = spec_for_weights(self.weights, self.runtime.backend, self.runtime.precision, augmented)
        self.style_spec: EmbeddingSpec | None = (
            style_spec_for_weights(self.weights, self.runtime.backend, self.runtime.precision, augmented) if style else None
        )
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = _build_vgg16(self.weights, self.spec.input_size, style=self.style_spec is not None, runtime=self.runtime)
        return self._model

    def load(self) -> None:
        """Build the model now (import Keras and the backend, load weights) rather than on first use."""
        _ = self.model

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(n, 224, 224, 3) RGB 0..255 (uint8, or floats holding those values) -> (n, 512) float32 unit vectors."""
        return self.embed_both(pixels)[0]

    def embed_both(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The base vectors and, with style=True, the style vectors (else None), from one forward pass."""
        style_dim = self.style_spec.dim if self.style_spec else 0
        if len(pixels) == 0:
            return np.zeros((0, self.spec.dim), np.float32), np.zeros((0, style_dim), np.float32) if style_dim else None
        batch = as_uint8(pixels)
        n = len(batch)
        if self.runtime.backend == "jax" and n & (n - 1):
            # JAX compiles once per input shape: pad to a power of two, so that odd-sized last
            # batches and single queries reuse a few compiled shapes instead of compiling anew.
            padded = 1 << n.bit_length()
            batch = np.concatenate([batch, np.zeros((padded - n, *batch.shape[1:]), np.uint8)])
        outputs = self.model.predict_on_batch(batch)
        try:  # a vector that is not finite or is zero is an error, never a result (embedding/vectors.py)
            if not self.style_spec:
                return unit_vectors(np.asarray(outputs, dtype=np.float32)[:n]), None
            base, *stats = (np.asarray(o, dtype=np.float32)[:n] for o in outputs)
            return unit_vectors(base), style_vectors(stats)
        except NotAVector as e:
            raise Damaged(f"{e} (Keras, {self.runtime.describe()}): check the weights ({self.weights or 'seeded random'})") from None

    def embed(self, images: Sequence[ImageSource] | Iterable[ImageSource]) -> np.ndarray:
        """Embed paths, PIL images or arrays; raises ImageError for an unusable one."""
        pixels = [decode_poster(image).pixels for image in images]
        if not pixels:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        return self.embed_pixels(np.stack(pixels))


def _build_vgg16(weights: str | None, input_size: int, style: bool = False, runtime: Runtime | None = None):
    """uint8 RGB in -> VGG16's preprocessing -> the 13 conv layers -> fp32 average pooling (-> style statistics).

    In bf16 the convolutions compute in bfloat16 (Keras "mixed_bfloat16": weights stay fp32);
    the pooling, the style statistics and the outputs are fp32.
    """
    runtime = runtime or Runtime("tensorflow", "fp32", False)
    keras = import_keras(runtime.backend)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if runtime.precision == "bf16" else "float32")
    try:
        inputs = keras.Input((input_size, input_size, 3), dtype="uint8", name="rgb_uint8")
        preprocessed = _vgg16_preprocessing(keras)(inputs)
        try:
            base = keras.applications.VGG16(
                include_top=False, weights=weights if weights is not None else None, input_tensor=preprocessed, pooling=None
            )
        except Exception as e:  # Keras raises bare Exception for download failures
            if weights == "imagenet":
                raise BadInput(
                    "could not download the ImageNet VGG16 weights (no internet?): "
                    "pass --weights PATH/TO/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 or set VGG16_WEIGHTS"
                ) from e
            raise BadInput(f"could not load VGG16 weights from {weights}: {str(e).splitlines()[0][:200]}") from e
        if weights is None:
            _set_seeded_weights(base)
        pooled = keras.layers.GlobalAveragePooling2D(dtype="float32", name="global_average_pooling2d")(base.output)
        if not style:
            return keras.Model(inputs, pooled, name="vgg16_embedder")
        # The same network, with more outputs: [(n, 512) pooled block 5, then per style layer
        # (n, 2 * channels) = the mean and standard deviation of each channel over the image].
        stats = []
        for name in STYLE_LAYERS:
            activations = keras.ops.cast(base.get_layer(name).output, "float32")
            mean = keras.ops.mean(activations, axis=(1, 2))
            std = keras.ops.std(activations, axis=(1, 2))
            stats.append(keras.layers.Concatenate(name=f"{name}_stats", dtype="float32")([mean, std]))
        return keras.Model(inputs, [pooled, *stats], name="vgg16_with_style")
    finally:
        keras.config.set_dtype_policy(policy)


def _vgg16_preprocessing(keras):
    """keras.applications.vgg16.preprocess_input as a layer: RGB->BGR, ImageNet channel means subtracted (fp32)."""

    class VGG16Preprocessing(keras.layers.Layer):
        def call(self, rgb):
            bgr = keras.ops.flip(keras.ops.cast(rgb, "float32"), axis=-1)
            return bgr - keras.ops.convert_to_tensor(_BGR_MEANS, dtype="float32")

    return VGG16Preprocessing(dtype="float32", name="vgg16_preprocessing")


_BGR_MEANS = np.array([103.939, 116.779, 123.68], dtype=np.float32)  # the ImageNet means VGG16 was trained with


def _set_seeded_weights(model) -> None:
    """ "random" weights from embedding/weights.py: the same numbers on every backend and in ONNX Runtime."""
    from .weights import seeded_layers

    for layer in seeded_layers():
        model.get_layer(layer.name).set_weights([layer.kernel, layer.bias])
