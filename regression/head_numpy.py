"""The saved year head evaluated in NumPy, read straight from `model.keras`: predicting a year needs no TensorFlow.

A `.keras` file is a zip of `config.json` (the layers and how they connect) and `model.weights.h5`
(their variables). The head is a few dense layers (regression/head.py), so evaluating it here is
exact and simpler than converting it: each layer type regression/head.py uses is one small
function below, applied in the order of the Keras config. tests/test_onnx.py checks that the
years equal Keras' own predictions. Training (`train-year`, `compare`) still uses Keras.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInput, Damaged

_EPSILON = 1e-7  # keras.backend.epsilon(): Normalization's floor on the standard deviation


@dataclass
class _Layer:
    name: str
    inputs: list[str]
    apply: Callable[[list[np.ndarray]], np.ndarray]


class NumpyHead:
    """embedding -> year (and, for the bins head, the 10th and 90th percentiles), like the Keras model."""

    def __init__(self, path: Path):
        self.path = Path(path)
        from ..safe_io import read_regular
        from .model_file import MAX_HEAD_BYTES

        try:  # a regular file of bounded size, and members whose unpacked size is bounded too (no zip bomb)
            with zipfile.ZipFile(io.BytesIO(read_regular(self.path, MAX_HEAD_BYTES, "year model head", follow_links=True))) as archive:
                for member in ("config.json", "model.weights.h5"):
                    if archive.getinfo(member).file_size > MAX_HEAD_BYTES:
                        raise ValueError(f"its {member} unpacks to {archive.getinfo(member).file_size:,} bytes")
                config = json.loads(archive.read("config.json"))
                weights = archive.read("model.weights.h5")
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
            raise Damaged(f"{self.path} is not a readable Keras model file ({type(e).__name__}: {str(e)[:120]}): train it again") from None
        import h5py

        try:
            with h5py.File(io.BytesIO(weights), "r") as h5:
                self._input, self._layers, self._output = _functional(config, h5)
        except BadInput as e:
            raise Damaged(f"{self.path}: {e}; train the model again") from None
        except Exception as e:
            raise Damaged(f"{self.path} does not hold a year head this version can read ({type(e).__name__}: {str(e)[:120]})") from None

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """(n, 1) years for a regression head, (n, 3) year, low and high quantile for the bins head."""
        values = {self._input: np.asarray(vectors, np.float32)}
        for layer in self._layers:
            values[layer.name] = layer.apply([values[i] for i in layer.inputs])
        return values[self._output]


def _functional(config: dict, h5) -> tuple[str, list[_Layer], str]:
    """The input's name, the layers in config order (Keras writes them in topological order), the output's name."""
    if config.get("class_name") != "Functional":
        raise BadInput("not a functional Keras model")
    members = iter(_numbered(h5["layers"], "sequential"))
    layers, input_name = [], None
    # the ignores below: mypy cannot type a lambda with default arguments (python/mypy#15459)
    for spec in config["config"]["layers"]:
        kind, name, cfg = spec["class_name"], spec["config"]["name"], spec["config"]
        if kind == "InputLayer":
            input_name = name
            continue
        if kind == "Sequential":
            apply = _sequential(cfg, h5["layers"][next(members)])
        elif kind == "Average":
            apply = lambda xs: np.mean(np.stack(xs), axis=0)  # noqa: E731
        elif kind == "Identity":
            apply = lambda xs: xs[0]  # noqa: E731
        elif kind == "Concatenate":
            apply = lambda xs, axis=cfg.get("axis", -1): np.concatenate(xs, axis=axis)  # type: ignore[misc]  # noqa: E731
        elif kind == "Rescaling":
            apply = lambda xs, s=float(cfg["scale"]), o=float(cfg["offset"]): xs[0] * np.float32(s) + np.float32(o)  # type: ignore[misc]  # noqa: E731
        elif kind == "ExpectedValue":
            apply = lambda xs, c=np.asarray(cfg["centres"], np.float32): np.sum(xs[0] * c, axis=-1, keepdims=True)  # type: ignore[misc]  # noqa: E731
        elif kind == "QuantileValue":
            apply = lambda xs, c=np.asarray(cfg["centres"], np.float32), q=float(cfg["quantile"]): binned_quantile(xs[0], c, q)  # type: ignore[misc]  # noqa: E731
        else:
            raise BadInput(f"layer type {kind} is not part of the year head")
        layers.append(_Layer(name, _inbound(spec), apply))
    if input_name is None:
        raise BadInput("the model has no input layer")
    output = config["config"]["output_layers"]  # ["name", 0, 0], or a list of such for several outputs
    return input_name, layers, output[0] if isinstance(output[0], str) else output[0][0]


def _sequential(cfg: dict, group) -> Callable[[list[np.ndarray]], np.ndarray]:
    """One ensemble member: power and feature normalisation, dense layers; noise and dropout are training-only."""
    dense = iter(_numbered(group["layers"], "dense"))
    steps: list[Callable[[np.ndarray], np.ndarray]] = []  # the ignores below: see _functional
    for spec in cfg["layers"]:
        kind, c = spec["class_name"], spec["config"]
        if kind in ("InputLayer", "GaussianNoise", "Dropout"):
            continue
        if kind == "PowerNormalization":
            steps.append(_power_normalization)
        elif kind == "Normalization":
            mean, variance = _finite(c["mean"], spec), _finite(c["variance"], spec)
            steps.append(lambda x, m=mean, s=np.maximum(np.sqrt(variance), _EPSILON): (x - m) / s)  # type: ignore[misc]
        elif kind == "Dense":
            variables = group["layers"][next(dense)]["vars"]
            kernel, bias = _finite(variables["0"], spec), _finite(variables["1"], spec)
            steps.append(lambda x, w=kernel, b=bias, a=c.get("activation", "linear"): _ACTIVATIONS[a](x @ w + b))  # type: ignore[misc]
        else:
            raise BadInput(f"layer type {kind} is not part of the year head")

    def member(xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        for step in steps:
            x = step(x)
        return x

    return member


def _finite(values, spec: dict) -> np.ndarray:
    """A layer's numbers as float32; BadInput if any is NaN or infinite (damaged weights would
    otherwise give "predicted year nan")."""
    array = np.asarray(values, np.float32)
    if not np.isfinite(array).all():
        raise BadInput(
            f"layer {str(spec.get('config', {}).get('name', '?'))[:60]} holds numbers that are not finite (NaN or infinite): the head is damaged"
        )
    return array


def _numbered(group, prefix: str) -> list[str]:
    """Keras' saved names for layers of one class, in creation order: prefix, prefix_1, prefix_2, ..."""
    names = [k for k in group if re.fullmatch(rf"{prefix}(_\d+)?", k)]
    return sorted(names, key=lambda k: int(k.rsplit("_", 1)[1]) if k != prefix else 0)


def _inbound(spec: dict) -> list[str]:
    """The names of the layers feeding this one (keras_history of its inbound tensors)."""
    names: list[str] = []

    def walk(value) -> None:
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                names.append(value["config"]["keras_history"][0])
            else:
                for v in value.values():
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(spec.get("inbound_nodes", []))
    return names


def _power_normalization(x: np.ndarray) -> np.ndarray:
    rooted = np.sqrt(np.maximum(x, 0.0))
    return rooted / np.maximum(np.linalg.norm(rooted, axis=-1, keepdims=True), 1e-12)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


_ACTIVATIONS = {"linear": lambda x: x, None: lambda x: x, "relu": lambda x: np.maximum(x, 0.0), "softmax": _softmax}


def binned_quantile(probabilities: np.ndarray, centres: np.ndarray, quantile: float) -> np.ndarray:
    """As regression.head.QuantileValue: (n, 1) quantiles of binned distributions (n, bins) over
    equally spaced bin centres, interpolated within their bin (also used by experiments/finetune.py)."""
    width = centres[1] - centres[0]
    cdf = np.cumsum(probabilities, axis=-1)
    below = np.minimum(np.sum(cdf < quantile, axis=-1), len(centres) - 1)
    rows = np.arange(len(probabilities))
    p = probabilities[rows, below]
    before = (cdf - probabilities)[rows, below]
    low_edge = centres[below] - width / 2
    return (low_edge + width * np.clip((quantile - before) / np.maximum(p, 1e-9), 0.0, 1.0))[:, None].astype(np.float32)
