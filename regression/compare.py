"""The original embedding against the style embedding, side by side, on the same split and seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput, command
from ..search.era import EraReport, era_coherence
from ..store.collection import PosterStore
from ..store.schema import STYLE_VECTOR_NAME, VECTOR_NAME
from .config import HeadConfig
from .dataset import YearData, load_year_data
from .model_file import HEAD_NAME
from .train import train_year_model


@dataclass
class Comparison:
    year: dict[str, dict[str, dict]]  # vector -> model name -> year_metrics
    era: dict[str, dict[int, EraReport]]  # vector -> k -> report
    n_test: int
    seed: int

    def as_dict(self) -> dict:
        return {
            "seed": self.seed,
            "n_test": self.n_test,
            "year": self.year,
            "era": {v: {k: r.as_dict() for k, r in e.items()} for v, e in self.era.items()},
        }

    def table(self) -> str:
        vectors = list(self.year)
        lines = [f"{'':34}" + "".join(f"{v:>14}" for v in vectors)]

        def row(label: str, values: list[float], fmt: str = "{:14.2f}") -> None:
            lines.append(f"{label:34}" + "".join(fmt.format(v) for v in values))

        lines.append(f"year, test set of {self.n_test} (seed {self.seed}):")
        for metric in ("mae", "rmse", "r2", "median_ae"):
            row(f"  head {metric.upper() if metric != 'r2' else 'R^2'}", [self.year[v][HEAD_NAME][metric] for v in vectors])
        for baseline in [name for name in self.year[vectors[0]] if name != HEAD_NAME]:
            row(f"  {baseline[:26]} MAE", [self.year[v][baseline]["mae"] for v in vectors])
        decades = sorted(self.year[vectors[0]][HEAD_NAME]["mae_by_decade"])
        for d in decades:
            row(f"  head MAE, {d}s", [self.year[v][HEAD_NAME]["mae_by_decade"].get(d, float("nan")) for v in vectors], "{:14.1f}")
        lines.append("search era coherence, mean |year difference|:")
        for k in sorted(self.era[vectors[0]]):
            row(f"  {k} nearest neighbours", [self.era[v][k].neighbour_mean for v in vectors], "{:14.1f}")
        row("  random pairs", [self.era[vectors[0]][min(self.era[vectors[0]])].random_mean] * len(vectors), "{:14.1f}")
        return "\n".join(lines)


def read_for_comparison(
    store: PosterStore,
    era_ks: tuple[int, ...] = (3, 10),
    seed: int = 0,
    vectors: tuple[str, ...] = (VECTOR_NAME, STYLE_VECTOR_NAME),
    progress: bool = True,
) -> tuple[dict[str, YearData], dict[str, dict[int, EraReport]]]:
    """Everything the comparison needs from the store (the vectors, and the era figures, which query
    it); after this the store can be closed while the heads train."""
    if STYLE_VECTOR_NAME in vectors:
        store.stored_spec(STYLE_VECTOR_NAME)
        lacking = len(store.ids_without(STYLE_VECTOR_NAME))
        if lacking:
            raise BadInput(f"{lacking} stored posters have no style vector yet: run {command('ingest --style ...')} first")
    data = {name: load_year_data(store, name) for name in vectors}
    era = {name: {k: era_coherence(store, k=k, seed=seed, vector_name=name, progress=progress) for k in era_ks} for name in vectors}
    return data, era


def train_for_comparison(
    data: dict[str, YearData],
    era: dict[str, dict[int, EraReport]],
    model_dir: Path,
    test_size: float = 0.2,
    seed: int = 0,
    config: HeadConfig = HeadConfig(),
    knn_k: int = 10,
    progress: bool = True,
) -> Comparison:
    year, n_test = {}, 0
    for name, vectors in data.items():
        report = train_year_model(vectors, model_dir / name, test_size, seed, config, knn_k, progress=progress)
        year[name], n_test = report.results, report.n_test
    return Comparison(year, era, n_test, seed)
