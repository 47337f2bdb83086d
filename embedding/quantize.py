"""int8 VGG16 for bulk CPU ingest: the fp32 ONNX graph quantised statically, calibrated on posters.

ONNX Runtime's static quantisation (QDQ format, weights int8 per output channel, activations
uint8 per tensor, their ranges the min/max seen on calibration posters). On a CPU with int8 dot
products (AVX-512 VNNI, AVX-VNNI, ARM dot-product) the convolutions run several times faster
than in fp32; the vectors move a little (docs/ingest.md#int8-faster-bulk-ingest-another-embedding gives the figures).

It is another embedding: its spec (embedding/spec.py `quantization`) names the recipe and the
calibration posters' digest, so an int8 collection is only ever extended and searched with the
same int8 model, never mixed with fp32 vectors. The calibration is deterministic: the same
posters (chosen evenly along the catalog, by content hash), decoded as for ingest. The collection
records them (file names and sha256), so a machine whose cache lacks the model rebuilds the same
one from the same posters.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInput

RECIPE = "int8-qdq-v1"  # QDQ, per-channel int8 weights, uint8 activations, MinMax ranges
CALIBRATION_POSTERS = 64


@dataclass(frozen=True)
class Calibration:
    """The posters an int8 model was calibrated on: file names (relative to the posters folder) and their sha256."""

    files: tuple[str, ...]
    sha256: tuple[str, ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.sha256).encode()).hexdigest()[:16]

    @property
    def quantization(self) -> str:
        """What the embedding spec records: the recipe and these posters."""
        return f"{RECIPE}:calibration-{self.digest}"

    def as_dict(self) -> dict:
        return {"recipe": RECIPE, "files": list(self.files), "sha256": list(self.sha256)}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(tuple(data["files"]), tuple(data["sha256"]))

    def pixels(self, posters_dir: Path | None) -> np.ndarray:
        """The calibration posters decoded as for ingest; BadInput if any is gone or changed."""
        from .images import ImageError, decode_poster

        if posters_dir is None or not Path(posters_dir).is_dir():
            raise BadInput(
                f"the int8 model is not in the cache and its calibration posters' folder {posters_dir} is not here: "
                "rebuild it where the posters are, or ingest with --precision fp32"
            )
        decoded = []
        for file, digest in zip(self.files, self.sha256):
            try:
                poster = decode_poster(Path(posters_dir) / file)
            except ImageError as e:
                raise BadInput(f"cannot rebuild the int8 model: calibration poster {e}") from None
            if poster.sha256 != digest:
                raise BadInput(f"cannot rebuild the int8 model: calibration poster {file} has changed since the collection was made")
            decoded.append(poster.pixels)
        return np.stack(decoded)


def choose_calibration(files: Sequence[str], posters_dir: Path, n: int = CALIBRATION_POSTERS) -> Calibration:
    """n posters spread evenly along `files` (catalog order) that are readable images: deterministic."""
    from .images import ImageError, decode_poster

    picked: list[str] = []
    digests: list[str] = []
    step = max(1, len(files) // n)
    for file in [*files[::step], *files]:  # evenly spread first; the rest fill in for unreadable ones
        if len(picked) == n:
            break
        if file in picked:
            continue
        try:
            digests.append(decode_poster(Path(posters_dir) / file).sha256)
            picked.append(file)
        except ImageError:
            continue
    if not picked:
        raise BadInput("no poster of the catalog could be read to calibrate the int8 model")
    return Calibration(tuple(picked), tuple(digests))


def quantize(fp32_model, calibration_pixels: np.ndarray, input_name: str):
    """The int8 model (an onnx.ModelProto): `fp32_model` (one too) quantised with ranges from these posters."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Posters(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([calibration_pixels[i : i + 8] for i in range(0, len(calibration_pixels), 8)])

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory(prefix="poster-search-int8-") as folder:
        source, prepared, out = (Path(folder) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save_model(fp32_model, str(source))
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            Posters(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv", "MaxPool", "Relu"],
            calibrate_method=CalibrationMethod.MinMax,  # the augmented model returns each tensor's min and max only
        )
        onnx.checker.check_model(str(out))
        return onnx.load(str(out))
