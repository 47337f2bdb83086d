"""The saved year model, read and written only here: a folder of three files.

    model.keras      the head (regression/head.py), written by Keras at training
    model.json       ModelFile: what the head reads, how it was trained, how good it is, its ranges
    trained_on.txt   the content keys (sha256) of every poster it was fitted or calibrated on

`model.json` is one typed, versioned record. Files written before it had a version (the plain
dict of earlier releases, with old and new keys side by side) are read through `upgrade()`, in
one place. Loading a model needs no TensorFlow: the head is evaluated in NumPy from model.keras
(regression/head_numpy.py). Embeddings are compared only as EmbeddingSpec, which ignores the
runtime and float precision by design.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..embedding.spec import EmbeddingSpec
from ..errors import BadInput, Damaged, NotFound, command
from ..safe_io import output_path, probe_writable, read_regular, write_atomic
from ..store.schema import STYLE_VECTOR_NAME, VECTOR_NAME
from .conformal import ranges

if TYPE_CHECKING:
    from .head_numpy import NumpyHead

MODEL_FILE = "model.keras"
META_FILE = "model.json"
TRAINED_ON_FILE = "trained_on.txt"
HEAD_NAME = "Keras head"  # the head's key among the test results
MAX_META_BYTES = 16 * 1024 * 1024  # model.json, trained_on.txt: kilobytes to a megabyte when train-year writes them
MAX_HEAD_BYTES = 256 * 1024 * 1024  # model.keras: a few megabytes
YEAR_SPAN = (1000.0, 3000.0)  # any year a model can claim: outside it, the file is damaged
MAX_YEARS_OFF = 1000.0  # an error or a range's half-width beyond this is damage, not a model
FORMAT_VERSION = 2
KNOWN_VECTORS = (VECTOR_NAME, STYLE_VECTOR_NAME)
# The JSON type of each field of model.json (lists become tuples when read); None is allowed where
# the field is optional.
JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "vector_names": list,
    "embeddings": dict,
    "collections": list,
    "store": str,
    "split": dict,
    "target_scaling": dict,
    "training_mean": (int, float),
    "head": dict,
    "test": dict,
    "uncertainty": dict,
    "trained_at": str,
    "test_by_collection": dict,
    "augmented": dict,
    "calibration": dict,
    "cross_source": dict,
}


@dataclass(frozen=True)
class ModelFile:
    """The contents of model.json."""

    vector_names: tuple[str, ...]  # the stored vectors the head reads, side by side in this order
    embeddings: dict[str, EmbeddingSpec]  # the embedding each of them must be made with
    collections: tuple[str, ...]  # what it was trained on
    store: str
    split: dict  # how the posters were divided: seed, shares, counts (regression/train.py)
    target_scaling: dict  # {"mean", "std"} of the training years
    training_mean: float
    head: dict  # HeadConfig.as_dict()
    test: dict  # model name (the head: HEAD_NAME) -> regression.metrics.year_metrics, on the test posters
    uncertainty: dict  # the calibrated ranges (regression/conformal.py)
    trained_at: str
    test_by_collection: dict = field(default_factory=dict)
    augmented: dict | None = None  # {"collections", "n_views"} when trained with augmented views
    calibration: dict | None = None  # the int8 embedding's calibration posters (embedding/quantize.py), if int8
    # The shipped model's figures on a source it never saw (regression/ship.py); None for train-year's.
    # Optional and ignored by readers that predate it, so the format version stays.
    cross_source: dict | None = None
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        unknown = [v for v in self.vector_names if v not in KNOWN_VECTORS]
        if not self.vector_names or unknown:
            raise BadInput(f"the year model reads vector(s) {', '.join(unknown) or 'none'}: this version knows {', '.join(KNOWN_VECTORS)}")
        missing = [v for v in self.vector_names if v not in self.embeddings]
        if missing:
            raise BadInput(f"the year model records no embedding for '{missing[0]}'")

    @property
    def spec(self) -> EmbeddingSpec:
        """The embedding of the first vector (all of them share weights and decode)."""
        return self.embeddings[self.vector_names[0]]

    @property
    def uses_style(self) -> bool:
        return STYLE_VECTOR_NAME in self.vector_names

    @property
    def vector_label(self) -> str:
        return "+".join(self.vector_names)

    @property
    def coverage(self) -> float:
        return float(self.uncertainty["coverage"])

    @property
    def test_mae(self) -> float:
        return float(self.test[HEAD_NAME]["mae"])

    def to_json(self) -> dict:
        data = asdict(self)
        data["embeddings"] = {name: spec.as_dict() for name, spec in self.embeddings.items()}
        return {"version": self.version, **{k: v for k, v in data.items() if k != "version"}}

    @classmethod
    def from_json(cls, data: dict) -> ModelFile:
        data = upgrade(data)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        wrong = [
            name
            for name, kinds in JSON_TYPES.items()
            if name in values and values[name] is not None and not isinstance(values[name], kinds)
        ]
        wrong += [
            name
            for name in ("vector_names", "collections")
            if isinstance(values.get(name), list) and not all(isinstance(v, str) for v in values[name])
        ]
        if wrong:
            raise Damaged(
                f"model.json's {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not of the type this version reads: the file is damaged; train the model again"
            )
        values["vector_names"] = tuple(values.get("vector_names") or ())
        values["collections"] = tuple(values.get("collections") or ())
        try:
            values["embeddings"] = {name: EmbeddingSpec.from_dict(spec) for name, spec in (values.get("embeddings") or {}).items()}
        except ValueError as e:
            raise Damaged(f"model.json's embeddings are damaged ({e}): train the model again") from None
        missing = [
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING and values.get(f.name) in (None, (), {})
        ]
        if missing:
            raise Damaged(f"model.json lacks {', '.join(missing)}: it is not a whole year model file; train the model again")
        try:
            model = cls(**values)
        except (TypeError, AttributeError, ValueError) as e:
            raise Damaged(
                f"model.json is not a year model file this version can read ({type(e).__name__}): train the model again"
            ) from None
        model._check_readable()
        return model

    def _check_readable(self) -> None:
        """Read the figures and ranges that predictions use once, now: a damaged value inside them is
        this one line, not an unexpected error at the first poster."""
        # Each value, and the plausible span it must lie in (a model.json from elsewhere may say 1e308):
        # years near the calendar, errors and range widths of at most a few centuries.
        uses = {
            "test": (lambda: [self.test_mae], 0.0, MAX_YEARS_OFF),
            "training_mean": (lambda: [float(self.training_mean)], *YEAR_SPAN),
            "uncertainty": (
                lambda: ranges(self.uncertainty, np.array([2000.0]), np.array([[1990.0, 2010.0]])),
                2000 - MAX_YEARS_OFF,
                2000 + MAX_YEARS_OFF,
            ),
            "uncertainty's coverage": (lambda: [self.coverage], 0.0, 1.0),
        }
        for name, (use, low, high) in uses.items():
            try:
                values = np.asarray(use(), float)
                if not np.isfinite(values).all():
                    raise ValueError("not a finite number")
            except (TypeError, KeyError, ValueError, IndexError, AttributeError) as e:
                raise Damaged(
                    f"model.json's {name} cannot be read ({type(e).__name__}): the file is damaged; train the model again"
                ) from None
            if not ((values >= low) & (values <= high)).all():
                raise Damaged(
                    f"model.json's {name} is out of range ({_shown(values)}, not within {low:g}..{high:g}): the file is damaged; train the model again"
                )

    @classmethod
    def read(cls, folder: Path) -> ModelFile:
        """model.json alone (no head): enough for the model's figures; BadInput for a missing or unreadable file."""
        path = Path(folder) / META_FILE
        try:
            data = json.loads(read_regular(path, MAX_META_BYTES, "year model file", follow_links=True))
        except FileNotFoundError:
            raise NotFound(f"no year model in {folder}: run {command('train-year')} first (or pass --model-dir)") from None
        except (OSError, ValueError) as e:
            raise Damaged(f"{path} is not a readable year model file ({type(e).__name__}): train the model again") from None
        if not isinstance(data, dict):
            raise Damaged(f"{path} is not a year model file: train the model again")
        return cls.from_json(data)

    def write(self, folder: Path) -> None:
        write_atomic(Path(folder) / META_FILE, json.dumps(self.to_json(), indent=2, ensure_ascii=False))


def upgrade(data: dict) -> dict:
    """A model.json of any earlier release, as the current version's fields.

    Version 1 (no "version" key) wrote `vector_name` / `vector_names`, `embedding` / `embeddings`
    and `collection` / `collections` side by side, and the oldest files only the singular ones."""
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise BadInput(f"model.json has format version {version!r}; this version of poster search reads up to {FORMAT_VERSION}")
    if version == FORMAT_VERSION:
        return data
    names = data.get("vector_names") or str(data.get("vector_name") or VECTOR_NAME).split("+")
    embeddings = data.get("embeddings") or ({names[0]: data["embedding"]} if data.get("embedding") else {})
    collections = data.get("collections") or [c for c in str(data.get("collection") or "").split("+") if c]
    upgraded = {k: v for k, v in data.items() if k not in ("vector_name", "embedding", "collection")}
    return {
        **upgraded,
        "version": FORMAT_VERSION,
        "vector_names": list(names),
        "embeddings": embeddings,
        "collections": collections,
        "training_mean": data.get("training_mean", (data.get("target_scaling") or {}).get("mean")),
    }


@dataclass
class YearModel:
    """A saved year model, loaded: its record and its head, evaluated without TensorFlow."""

    file: ModelFile
    head: NumpyHead
    trained_on: frozenset[str] = frozenset()
    identity: str = ""  # "year-model:<digest>" of model.json and model.keras: payload `predicted_by` (predict-year --stored)

    @property
    def vector_names(self) -> tuple[str, ...]:
        return self.file.vector_names

    @property
    def specs(self) -> dict[str, EmbeddingSpec]:
        return self.file.embeddings

    @property
    def uses_style(self) -> bool:
        return self.file.uses_style

    @classmethod
    def load(cls, folder: Path) -> YearModel:
        from .head_numpy import NumpyHead

        folder = Path(folder)
        file = ModelFile.read(folder)
        if not (folder / MODEL_FILE).is_file():
            raise Damaged(f"{folder} has model.json but no {MODEL_FILE}: train the model again")
        head = NumpyHead(folder / MODEL_FILE)
        try:
            keys = read_regular(folder / TRAINED_ON_FILE, MAX_META_BYTES, "the model's list of training posters", follow_links=True)
        except FileNotFoundError:
            keys = b""
        return cls(file, head, frozenset(keys.decode("ascii", "replace").split()), model_identity(folder))

    def outputs(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, np.float32)
        expected = sum(spec.dim for spec in self.specs.values())
        if vectors.ndim != 2 or vectors.shape[1] != expected:
            raise BadInput(f"the year model reads {expected}-d vectors ({self.file.vector_label}), not {vectors.shape[1:]}")
        return self.head.predict(vectors)

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        return self.outputs(vectors)[:, 0]

    def predict_with_ranges(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each poster's year and its calibrated range: (years, low, high)."""
        out = self.outputs(vectors)
        years, quantiles = out[:, 0], (out[:, 1:3] if out.shape[1] == 3 else None)
        low, high = ranges(self.file.uncertainty, years, quantiles)
        sane = np.isfinite(years) & np.isfinite(low) & np.isfinite(high) & (np.abs(np.asarray(years, float) - 2000) <= MAX_YEARS_OFF)
        if not sane.all():  # damaged weights (NaN, or numbers far beyond a year): never printed as a year
            shown = _shown(np.asarray(years, float)[~sane][:1])
            raise Damaged(f"the year model gives {shown} as a year: its weights ({MODEL_FILE}) are damaged; train the model again")
        return years, low, high


def check_specs(model: YearModel, specs: dict) -> None:
    """Refuse vectors made with another embedding than the model's (its predictions would be
    meaningless): `specs` are what a collection records, vector name -> EmbeddingSpec."""
    for name, spec in model.specs.items():
        stored = specs.get(name)
        if not spec.same_values(stored):  # a store made on JAX or in bf16 is the same embedding
            made = "no such vector" if stored is None else f"embedding {stored.describe()}"
            raise BadInput(
                f"the year model needs '{name}' made with {spec.describe()}, but this store has {made}: evaluate it on a store made with the same weights"
            )


def model_identity(folder: Path) -> str:
    """Which model made a prediction: a digest of its record and its head, so a retrained model
    (even in the same folder) is another model, and a copy of one is the same."""
    import hashlib

    digest = hashlib.sha256()
    for name, limit in ((META_FILE, MAX_META_BYTES), (MODEL_FILE, MAX_HEAD_BYTES)):  # bounded regular files, as the model is read
        digest.update(hashlib.sha256(read_regular(Path(folder) / name, limit, f"year model file {name}", follow_links=True)).digest())
    return f"year-model:{digest.hexdigest()[:16]}"


def check_model_dir(folder: Path) -> None:
    """BadInput unless a model can be written into `folder`: checked before training, not after it.

    Really writes a file there (permission bits say nothing for root, and a full disk or a
    read-only mount refuses writes whatever they say)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"--model-dir {folder} is a file, not a folder: give a folder for the year model")
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe_writable(folder)  # an exclusive temp file: a link planted in the folder is never written through
        if made:
            folder.rmdir()
    except OSError as e:
        raise BadInput(f"cannot write the year model to {folder}: {e.strerror or e}") from None


def save_model(folder: Path, keras_model, file: ModelFile, trained_on: frozenset[str]) -> None:
    """Write the three files (Keras writes the head): each made under a private name, then renamed
    into the folder (a link planted there is replaced, never written through)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with output_path(folder / MODEL_FILE) as staged:
        keras_model.save(staged)
    with output_path(folder / META_FILE) as staged:
        file.write(staged.parent)
    with output_path(folder / TRAINED_ON_FILE) as staged:
        staged.write_text("".join(f"{k}\n" for k in sorted(trained_on)))


def _shown(values: np.ndarray) -> str:
    """A number as a message shows it: never 300 digits."""
    return ", ".join(f"{v:.4g}" for v in np.ravel(values)[:3])
