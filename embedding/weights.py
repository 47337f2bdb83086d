"""VGG16's 13 convolutional layers as arrays, read without TensorFlow.

Keras is the source of the model: its "notop" weights file (the one `weights="imagenet"`
downloads, or a copy given with --weights) holds every kernel and bias under the layer names of
`keras.applications.VGG16`, and the seeded random weights of the tests are drawn here for both
runtimes. The ONNX form of the embedder (embedding/onnx_graph.py) is built from these arrays, so
a query never needs TensorFlow, not even the first one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedding.spec import KERAS_NOTOP_MD5
from errors import UserError

# (layer, input channels, output channels) of VGG16's convolutional base; a 2x2 max-pool ends each block.
CONV_LAYERS = (
    ("block1_conv1", 3, 64),
    ("block1_conv2", 64, 64),
    ("block2_conv1", 64, 128),
    ("block2_conv2", 128, 128),
    ("block3_conv1", 128, 256),
    ("block3_conv2", 256, 256),
    ("block3_conv3", 256, 256),
    ("block4_conv1", 256, 512),
    ("block4_conv2", 512, 512),
    ("block4_conv3", 512, 512),
    ("block5_conv1", 512, 512),
    ("block5_conv2", 512, 512),
    ("block5_conv3", 512, 512),
)
KERAS_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


@dataclass(frozen=True)
class ConvLayer:
    name: str
    kernel: np.ndarray  # (3, 3, in, out) float32, Keras' layout
    bias: np.ndarray  # (out,) float32


def conv_layers(weights: str | None) -> list[ConvLayer]:
    """The 13 layers for resolved weights: "imagenet", a notop .h5 path, or None (seeded random)."""
    if weights is None:
        return seeded_layers()
    path = keras_imagenet_file() if weights == "imagenet" else Path(weights)
    return read_h5(path)


def seeded_layers() -> list[ConvLayer]:
    """The seeded "random" weights: He-uniform kernels, zero biases, drawn with NumPy in Keras'
    own weight order (kernel, then bias, layer by layer), so every runtime gets the same numbers."""
    rng = np.random.default_rng(0)
    layers = []
    for name, channels_in, channels_out in CONV_LAYERS:
        limit = np.sqrt(6.0 / (3 * 3 * channels_in))
        kernel = rng.uniform(-limit, limit, (3, 3, channels_in, channels_out)).astype(np.float32)
        layers.append(ConvLayer(name, kernel, np.zeros(channels_out, np.float32)))
    return layers


def read_h5(path: Path) -> list[ConvLayer]:
    """Kernels and biases from a Keras notop weights file, by layer name, in the file's own weight order."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            layers = []
            for name, channels_in, channels_out in CONV_LAYERS:
                if name not in group:
                    raise UserError(f"{path} is not a VGG16 notop weights file: it has no layer {name}")
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in group[name].attrs["weight_names"]]
                kernel, bias = (np.asarray(group[name][n], np.float32) for n in names)
                if kernel.shape != (3, 3, channels_in, channels_out) or bias.shape != (channels_out,):
                    raise UserError(f"{path}: layer {name} has shapes {kernel.shape}, {bias.shape}, not VGG16's")
                layers.append(ConvLayer(name, kernel, bias))
            return layers
    except UserError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise UserError(f"could not load VGG16 weights from {path}: {str(e).splitlines()[0][:200]}") from None


def keras_imagenet_file() -> Path:
    """Keras' own copy of the ImageNet notop weights, downloaded by Keras on first use (once)."""
    cached = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models" / KERAS_NOTOP_FILE
    if cached.is_file():
        return cached
    from embedding.keras_import import import_keras

    keras = import_keras()
    try:
        return Path(
            keras.utils.get_file(
                KERAS_NOTOP_FILE,
                "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + KERAS_NOTOP_FILE,
                cache_subdir="models",
                file_hash=KERAS_NOTOP_MD5,
            )
        )
    except Exception as e:  # Keras raises bare Exception for download failures
        raise UserError(
            f"could not download the ImageNet VGG16 weights (no internet?): pass --weights PATH/TO/{KERAS_NOTOP_FILE} or set VGG16_WEIGHTS"
        ) from e
