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

from ..errors import BadInput
from .spec import KERAS_NOTOP_MD5

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
                    raise BadInput(f"{path} is not a VGG16 notop weights file: it has no layer {name}")
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in group[name].attrs["weight_names"]]
                kernel, bias = (np.asarray(group[name][n], np.float32) for n in names)
                if kernel.shape != (3, 3, channels_in, channels_out) or bias.shape != (channels_out,):
                    raise BadInput(f"{path}: layer {name} has shapes {kernel.shape}, {bias.shape}, not VGG16's")
                # OpenVINO's ReLU turns NaN into 0: such weights would give finite vectors of another model
                if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
                    raise BadInput(f"{path}: layer {name} has weights that are not finite (NaN or infinite): the file is damaged")
                layers.append(ConvLayer(name, kernel, bias))
            return layers
    except BadInput:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise BadInput(f"could not load VGG16 weights from {path}: {str(e).splitlines()[0][:200]}") from None


KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + KERAS_NOTOP_FILE


def keras_imagenet_file() -> Path:
    """Keras' own copy of the ImageNet notop weights ($KERAS_HOME/models, else ~/.keras/models),
    downloaded on first use from where Keras downloads it, and checked by the digest Keras checks
    it by. Written as Keras would, so Keras and poster search share the one copy; downloaded here
    without Keras, which only training needs."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    cached = home / "models" / KERAS_NOTOP_FILE
    if cached.is_file():
        return cached
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        _download(KERAS_WEIGHTS_URL, cached, KERAS_NOTOP_MD5)
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise BadInput(
            f"could not download the ImageNet VGG16 weights (no internet? {str(reason)[:120]}): "
            f"pass --weights PATH/TO/{KERAS_NOTOP_FILE} or set VGG16_WEIGHTS"
        ) from None
    return cached


def _download(url: str, path: Path, md5: str) -> None:
    """`url` to `path`, with a progress bar on stderr: written to an exclusive temp file beside it
    and renamed into place once its digest checks out (ValueError otherwise; nothing left behind)."""
    import hashlib
    import sys
    import urllib.request

    from tqdm import tqdm

    from ..safe_io import atomic_writer

    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=60) as response, atomic_writer(path) as out:
        size = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=size, unit="B", unit_scale=True, desc="VGG16 weights", file=sys.stderr, leave=False) as bar:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise ValueError(f"the download from {url} does not match its digest")
