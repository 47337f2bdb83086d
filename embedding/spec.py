"""What identifies an embedding, so vectors of different embeddings are never mixed.

Two stores agree on an embedding when every field agrees. Nothing here imports TensorFlow:
ingest and search check a store against the requested embedding before loading the model.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..errors import BadInput, check_file

WEIGHTS_ENV = "VGG16_WEIGHTS"
# md5 of the "notop" file Keras itself downloads for weights="imagenet" (keras.applications.vgg16):
# a local copy of exactly that file is the same embedding as "imagenet".
KERAS_NOTOP_MD5 = "6d6bbae143d832006294945121d1f1fc"
RANDOM_WEIGHTS = "random"  # weights=None, seeded: only for tests and experiments
# Weights files that hold Keras' ImageNet VGG16 values under another digest: the shared data's
# notop file, converted from an ONNX copy and checked against Keras' own (its README). A store
# still records which file made its vectors; a year head reads their vectors alike
# (EmbeddingSpec.same_values), so the shipped model dates posters embedded with either.
IMAGENET_COPIES = frozenset({"sha256:5ffcc3e2b95af530"})

# The "style" embedding: statistics of five convolutional layers, one per VGG16 block, from the
# same forward pass. Early layers see colour, grain and print texture; later ones typography and
# layout motifs. See embedding/model.py.
STYLE_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")
STYLE_CHANNELS = (64, 128, 256, 512, 512)
# How a poster file becomes the model's input (embedding/images.py): Pillow decode (JPEGs at a
# reduced DCT scale that is still >= 224 px), EXIF orientation, RGB on white, then a bilinear
# resize of the whole poster to 224x224, handed over as uint8. Changing any of it changes vectors.
DECODE = "pillow-draft,bilinear,uint8"


@dataclass(frozen=True)
class EmbeddingSpec:
    model: str = "vgg16"
    layer: str = "block5_pool"  # last convolutional block of VGG16, classifier head dropped
    pooling: str = "avg"  # global average pooling over the 7x7 grid -> one value per channel
    input_size: int = 224
    resize: str = "squash"  # see embedding/images.py
    weights: str = "imagenet"  # "imagenet", "sha256:<file digest>" or "random"
    dim: int = 512
    decode: str = DECODE  # compared: another decode/resize gives other vectors
    # Compared: "" for float models; an int8 model names its recipe and calibration posters
    # (embedding/quantize.py), so int8 vectors never mix with fp32 ones or with another int8 model's.
    quantization: str = ""
    # Recorded, not compared: fp32 vectors agree across backends (cosine >= 0.9999) and bf16 ones
    # with fp32 (>= 0.999, docs/ingest.md#the-pipeline-runtimes-and-precision), so a store made on a GPU in bf16 can be resumed or searched
    # on a CPU in fp32. dataclass equality (what the store's spec check uses) ignores them.
    backend: str = field(default="tensorflow", compare=False)
    precision: str = field(default="fp32", compare=False)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EmbeddingSpec:
        """From a stored record; ValueError for one that is not a dict or has a field of the wrong
        type (a damaged file must not pass as another embedding)."""
        if not isinstance(data, dict):
            raise ValueError(f"an embedding record is a JSON object, not {type(data).__name__}")
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for f in fields(cls):
            kind = type(f.default)  # every field has a default of its type (str or int)
            if f.name in known and (type(known[f.name]) is not kind):
                raise ValueError(f"the embedding's {f.name} is {known[f.name]!r}, not of type {kind.__name__}")
        return cls(**known)

    def describe(self) -> str:
        text = f"{self.model}/{self.layer}/{self.pooling}-pool/{self.input_size}px-{self.resize}/weights={self.weights}"
        return f"{text}/{self.quantization}" if self.quantization else text

    def same_values(self, other: EmbeddingSpec | None) -> bool:
        """The same embedding, counting a known copy of the ImageNet weights as "imagenet" (a year
        head's check: vectors equal to float rounding are one input to it)."""
        return other is not None and self._imagenet_alike() == other._imagenet_alike()

    def _imagenet_alike(self) -> EmbeddingSpec:
        return replace(self, weights="imagenet") if self.weights in IMAGENET_COPIES else self

    def compared(self) -> dict:
        """The fields that make two embeddings differ (what a store's compatibility check compares)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.compare}


def resolve_weights(weights: str | None) -> str | None:
    """Turn the --weights option (or $VGG16_WEIGHTS) into what Keras takes: "imagenet", a file path, or None."""
    if weights is None or weights == "":
        weights = os.environ.get(WEIGHTS_ENV) or "imagenet"
    if weights == "imagenet":
        return weights
    if weights in ("none", RANDOM_WEIGHTS):
        return None
    path = Path(weights).expanduser()
    if not path.exists():
        raise BadInput(f"VGG16 weights file not found: {path} (give --weights imagenet or a .h5 file)")
    check_file(path, "VGG16 weights file")  # a folder, a FIFO or a device is said as such
    return str(path)


def decode_for(augmented: bool) -> str:
    """How posters become model input: the stored poster, or its augmented view (embedding/augment.py)."""
    from .augment import AUGMENT

    return f"{DECODE},{AUGMENT}" if augmented else DECODE


def spec_for_weights(
    weights: str | None, backend: str = "tensorflow", precision: str = "fp32", augmented: bool = False, quantization: str = ""
) -> EmbeddingSpec:
    """The spec of the default VGG16 embedding with the given (resolved) weights."""
    return EmbeddingSpec(
        weights=weights_id(weights), backend=backend, precision=precision, decode=decode_for(augmented), quantization=quantization
    )


def style_spec_for_weights(
    weights: str | None, backend: str = "tensorflow", precision: str = "fp32", augmented: bool = False, quantization: str = ""
) -> EmbeddingSpec:
    """The spec of the style embedding (channel statistics of five layers) with these weights."""
    return EmbeddingSpec(
        decode=decode_for(augmented),
        layer="+".join(STYLE_LAYERS),
        pooling="channel-mean+std,l2-per-layer",
        weights=weights_id(weights),
        dim=2 * sum(STYLE_CHANNELS),
        backend=backend,
        precision=precision,
        quantization=quantization,
    )


def weights_id(weights: str | None) -> str:
    """ "imagenet", "random", or the digest of a weights file (the Keras download's own file counts as imagenet)."""
    if weights is None:
        return RANDOM_WEIGHTS
    if weights == "imagenet":
        return "imagenet"
    from .onnx_cache import remembered

    def digest() -> str:
        data = Path(weights).read_bytes()
        if hashlib.md5(data).hexdigest() == KERAS_NOTOP_MD5:
            return "imagenet"
        return "sha256:" + hashlib.sha256(data).hexdigest()[:16]

    return remembered(Path(weights), "weights_id", digest)  # hashing 59 MB is a quarter of a cold query
