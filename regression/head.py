"""The Keras regression head: a poster embedding in, a release year out.

The head is an ensemble of small multilayer perceptrons. Each member is, layer by layer:

    input (512)            the stored VGG16 embedding: average-pooled, L2-normalised activations
    PowerNormalization     sqrt of each activation, then L2 again: pooled ReLU features are
                           heavy-tailed (a few channels dominate), sqrt evens them out so that
                           rarer style cues count; a standard step for pooled CNN features
    Normalization          per-feature mean 0 / variance 1, learned from the training vectors
                           only: every input then starts on the same scale for the first layer
                           (variances floored, so near-constant features are not blown up)
    GaussianNoise(0.3)     noise on the inputs while training only: the model cannot rely on
                           any single exact feature value, which regularises like augmentation
    Dense(512, relu)       the hidden layers: combinations of style features (palette, grain,
    Dropout(0.5)           typography, layout) that together date a poster; dropout and an L2
    Dense(128, relu)       weight penalty keep them from memorising ~2,500 training posters
    Dropout(0.5)
    Dense(1)               the output, a standardised year z = (year - mean) / std

Why a standardised target: raw years (about 1985 +- 24) would make the output layer spend its
first epochs learning the offset 1985, with gradients 80 times larger than the signal. z is
centred and of unit scale, like the inputs. A final Rescaling layer turns z back into a year, so
the saved model predicts years directly.

Loss: Huber with delta 0.5 (about 12 years): squared error for small misses, absolute error for
large ones. Years have outliers (stills instead of posters, re-releases), and absolute error is
what we report.

With target "bins" (the CLI's default) the output layer is instead Dense(n_bins, softmax): a
distribution over 5-year bins, trained with cross-entropy against soft labels (each year a
Gaussian over the bins, so that neighbouring years share probability). The members'
distributions are averaged, and the saved model outputs three columns read off that average: the
median year (what minimises absolute error), and the 10th and 90th percentiles, the poster's raw
range that conformal.py calibrates.

Training: Adam, early stopping on a validation part of the training data (never the test set),
keeping the best weights. Members differ only in their seed; their mean is the prediction, which
cancels part of each member's variance (on the shared data: single members 13.0-13.3 years MAE,
the mean of five 12.9).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..embedding.keras_import import import_keras
from .config import HeadConfig

if TYPE_CHECKING:
    import keras  # keras has no type information: Any, but names like keras.Model are valid in annotations
else:
    keras = import_keras()


@keras.saving.register_keras_serializable(package="poster_search")
class PowerNormalization(keras.layers.Layer):
    """sqrt of the (non-negative) activations, re-normalised to unit length."""

    def call(self, inputs):
        rooted = keras.ops.sqrt(keras.ops.maximum(inputs, 0.0))
        return rooted / keras.ops.maximum(keras.ops.norm(rooted, axis=-1, keepdims=True), 1e-12)


@keras.saving.register_keras_serializable(package="poster_search")
class ExpectedValue(keras.layers.Layer):
    """Probabilities over year bins -> the expected (standardised) year: sum of p_i * centre_i."""

    def __init__(self, centres, **kwargs):
        super().__init__(**kwargs)
        self.centres = [float(c) for c in centres]

    def call(self, probabilities):
        return keras.ops.sum(probabilities * keras.ops.convert_to_tensor(self.centres, dtype=probabilities.dtype), axis=-1, keepdims=True)

    def get_config(self):
        return {**super().get_config(), "centres": self.centres}


@keras.saving.register_keras_serializable(package="poster_search")
class QuantileValue(keras.layers.Layer):
    """Probabilities over equal-width year bins -> a quantile of the (standardised) year, interpolated within its bin.

    The median (quantile 0.5), not the expected value, is what minimises the expected absolute
    error; on a skewed distribution (a poster near either end of the century) the two differ.
    """

    def __init__(self, centres, quantile: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.centres = [float(c) for c in centres]
        self.quantile = float(quantile)

    def call(self, probabilities):
        centres = keras.ops.convert_to_tensor(self.centres, dtype=probabilities.dtype)
        width = centres[1] - centres[0]
        cdf = keras.ops.cumsum(probabilities, axis=-1)
        below = keras.ops.sum(keras.ops.cast(cdf < self.quantile, "int32"), axis=-1)  # the bin where the cdf passes it
        at = keras.ops.one_hot(keras.ops.minimum(below, len(self.centres) - 1), len(self.centres), dtype=probabilities.dtype)
        p = keras.ops.sum(probabilities * at, axis=-1, keepdims=True)
        before = keras.ops.sum((cdf - probabilities) * at, axis=-1, keepdims=True)
        low_edge = keras.ops.sum(centres * at, axis=-1, keepdims=True) - width / 2
        return low_edge + width * keras.ops.clip((self.quantile - before) / keras.ops.maximum(p, 1e-9), 0.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "centres": self.centres, "quantile": self.quantile}


def bin_centres(years: np.ndarray, width: float) -> np.ndarray:
    """Year bins of `width` covering the training years with one spare bin at each end."""
    low, high = np.floor(years.min() / width) * width - width, np.ceil(years.max() / width) * width + width
    return np.arange(low, high + 1e-9, width) + width / 2


def soft_labels(years: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    """Each year as a Gaussian over the bin centres: neighbouring years share probability (the order of years)."""
    weights = np.exp(-0.5 * ((years[:, None] - centres[None, :]) / sigma) ** 2)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _member(train_vectors: np.ndarray, config: HeadConfig, seed: int, n_out: int = 1) -> keras.Model:
    keras.utils.set_random_seed(seed)  # initial weights, dropout and noise: reproducible per seed
    power = PowerNormalization()
    powered = keras.ops.convert_to_numpy(power(train_vectors))
    # A feature (nearly) constant in training would be divided by a (nearly) zero deviation and
    # explode on a new poster where it differs: floor the variance at 1% of the typical one.
    variance = np.maximum(powered.var(axis=0), 0.01 * np.median(powered.var(axis=0)))
    normalization = keras.layers.Normalization(mean=powered.mean(axis=0), variance=variance)
    layers = [keras.Input((train_vectors.shape[1],)), power, normalization, keras.layers.GaussianNoise(config.input_noise)]
    for units in config.hidden:
        layers += [
            keras.layers.Dense(units, activation="relu", kernel_regularizer=keras.regularizers.l2(config.l2)),
            keras.layers.Dropout(config.dropout),
        ]
    if n_out == 1:
        layers.append(keras.layers.Dense(1))
        loss = keras.losses.Huber(config.huber_delta)
    else:
        layers.append(keras.layers.Dense(n_out, activation="softmax"))
        loss = keras.losses.CategoricalCrossentropy()
    model = keras.Sequential(layers, name=f"member_{seed}")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss)
    return model


def train_head(
    vectors: np.ndarray,
    years: np.ndarray,
    config: HeadConfig = HeadConfig(),
    seed: int = 0,
    progress: bool = False,
    sample_weight: np.ndarray | None = None,
) -> tuple[keras.Model, dict]:
    """Train the ensemble on (vectors, years), rows weighted by `sample_weight` if given; returns the
    model (embedding -> year) and the target scaling."""
    from tqdm import tqdm

    mean, std = float(years.mean()), float(years.std()) or 1.0
    if config.target == "bins":
        centres = bin_centres(years, config.bin_width)
        target, n_out = soft_labels(years, centres, config.label_sigma), len(centres)
    elif config.target == "regression":
        target, n_out = (years - mean) / std, 1
    else:
        raise ValueError(f"unknown head target {config.target!r}")
    members = []
    bar = tqdm(total=config.members, unit="member", desc="training head", disable=not progress)
    for m in range(config.members):
        member_seed = seed * 1000 + m
        # Keras' validation_split holds out the *last* rows. A different random order per member
        # gives each its own validation part: the ensemble then averages over that choice (worth
        # about +-0.3 years of test MAE for a single member) and its members differ more.
        order = np.random.default_rng(member_seed).permutation(len(years))
        member = _member(vectors, config, seed=member_seed, n_out=n_out)
        history = member.fit(
            vectors[order],
            target[order],
            sample_weight=None if sample_weight is None else sample_weight[order],
            validation_split=config.validation_split,
            epochs=config.epochs,
            batch_size=config.batch_size,
            verbose=0,
            callbacks=[keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True)],
        )
        members.append(_without_optimizer(member))
        bar.set_postfix(epochs=len(history.history["loss"]), val_loss=f"{min(history.history['val_loss']):.3f}")
        bar.update(1)
    bar.close()
    inputs = keras.Input((vectors.shape[1],), name="embedding")
    outputs = [member(inputs) for member in members]
    # The members' mean: of their years (regression), or of their distributions over the bins,
    # from which one year is read (for the expected value the two orders give the same number).
    z = keras.layers.Average(name="members_mean")(outputs) if len(outputs) > 1 else keras.layers.Identity(name="members_mean")(outputs[0])
    if config.target == "bins":
        if config.output not in ("mean", "median"):
            raise ValueError(f"unknown output {config.output!r}")
        z_centres = (centres - mean) / std
        year = (
            ExpectedValue(z_centres, name="mean_year") if config.output == "mean" else QuantileValue(z_centres, 0.5, name="median_year")
        )(z)
        # Columns 2 and 3: quantiles of the same distribution, a range whose width is this poster's
        # own (a poster the model is unsure of gets a wide one); conformal.py calibrates them.
        low, high = (QuantileValue(z_centres, q, name=f"quantile_{q:g}")(z) for q in config.range_quantiles)
        z = keras.layers.Concatenate(name="year_and_quantiles")([year, low, high])
    year = keras.layers.Rescaling(scale=std, offset=mean, name="to_year")(z)  # z -> year
    return keras.Model(inputs, year, name="year_head"), {"mean": mean, "std": std}


def _without_optimizer(member: keras.Model) -> keras.Model:
    """The trained member, uncompiled: a compiled model is saved with Adam's two moments of every
    weight, so model.keras would be three times the size of the head itself."""
    clone = keras.Sequential.from_config(member.get_config())  # not clone_model: Keras 3 compiles its clones
    clone.set_weights(member.get_weights())
    return clone


def predict_years(model: keras.Model, vectors: np.ndarray) -> np.ndarray:
    return predict_with_quantiles(model, vectors)[0]


def predict_with_quantiles(model: keras.Model, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Years, and (n, 2) low/high quantiles of each poster's predicted distribution (None for a regression head)."""
    out = np.asarray(model.predict(np.asarray(vectors, dtype=np.float32), verbose=0, batch_size=1024))
    return out[:, 0], (out[:, 1:3] if out.shape[1] == 3 else None)
