"""The defaults a user meets, in one place: the library's (poster_search.Posters) and the CLI's
options both start from these, so `poster-search search` and `Posters().search` answer alike.
The year head's own defaults are regression/config.py's HeadConfig; the store's schema names
(collection, vectors) are store/schema.py's."""

from __future__ import annotations

from pathlib import Path

from .regression.config import DEFAULT_VECTOR, VectorChoice

K = 3  # neighbours a search returns
ERA_K = 3  # neighbours per poster for era coherence
YEAR_POSTERS = 200_000  # dated posters a year model reads from one collection at most (a seeded sample beyond): 400 MB of vgg16
ERA_QUERIES = 2000  # posters (a seeded sample) era coherence asks about by default: its figures settle well before
DUPLICATE_THRESHOLD = 0.95  # cosine similarity from which two posters are near-duplicates
MODEL_DIR = Path("year_model")  # where train-year saves the year model, and every other command reads it
COMPARE_DIR = Path("compare_models")  # compare's two year models
REJECTS = Path("ingest-rejects.csv")  # where ingest writes rejected rows and posters
MAP_FILE = Path("map.png")
TEST_SIZE = 0.2  # share of dated posters held out to test the year model (chosen by content hash)
KNN_K = 10  # k of the year model's k-NN baseline
YEAR_VECTOR: VectorChoice = DEFAULT_VECTOR  # the stored vector(s) the year model reads
BATCH_SIZE = 32  # images per model batch when dating images
MIGRATE_BATCH = 256  # points per scroll and upsert when copying a collection
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8000
ERA_SAMPLE = 1000  # posters (a seeded sample) behind the page's era figures
MAX_EXAMPLES = 20  # liked, and disliked, posters per recommendation
MAX_EXPLAIN = 24  # similarity maps per request: one forward pass each
