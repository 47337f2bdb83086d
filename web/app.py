"""The HTTP routes: the page, and the JSON API it uses (its OpenAPI description at /openapi.json).

A thin layer, as the CLI is: each route parses its request, calls the library's front object
(poster_search.Posters, one for the life of the server: the open store and the loaded models)
and shapes the answer (web/render.py). FastAPI (on Starlette, served by uvicorn) validates and
documents the typed parameters, python-multipart reads uploads, and its TestClient drives the
same app in tests. Routes are plain `def`s: FastAPI runs them in a thread pool, so a search never
blocks the server's event loop. An error's status comes from its kind (poster_search.errors),
never from its wording.

Around the routes (web/guards.py): only the host names the server was started for are answered
(a web page elsewhere cannot rebind its name to 127.0.0.1 and read the store), request bodies
stop at the upload limit however they are framed, another site's page cannot make a browser call
the API (403), and every error is one line of JSON. There is no /docs or /redoc: FastAPI's
interactive docs load Swagger's JavaScript from a CDN, outside the page's policy and blank offline;
/openapi.json describes the same API for any viewer.
"""

import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, File, Request, UploadFile
from fastapi import Query as Q
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from .. import defaults
from ..api import Filters, ImageQuery, Posters
from ..errors import BadInput, Damaged, InUse, NotFound, NotInstalled, PosterSearchError
from ..results import Sort, YearStatus
from ..store.schema import VECTOR_NAME, VectorName
from . import render
from .guards import LOCAL_HOSTS, BodyLimit, HostCheck, SameOrigin, one_line
from .thumbs import Thumbnails
from .uploads import MAX_UPLOAD_BYTES, UploadError, rename_in_message, uploaded_image

STATIC = Path(__file__).parent / "static"
MULTIPART_SLACK = 64 * 1024  # form boundaries and headers around the file itself
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
POSTER_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}
WEB_NAMES = ("year_min", "year_max")  # how messages name the year bounds: the API's parameters, not the CLI's options
STATUS = {NotFound: 404, Damaged: 503, InUse: 409, NotInstalled: 501, BadInput: 400}  # by kind; any other PosterSearchError: 400
UPLOADS_KEPT = 16  # recent uploads' vectors and grids, by token: for their similarity maps


@dataclass(frozen=True)
class Where:
    """Where and how to search: the collection, the stored vector, k and the filters."""

    collection: str
    vector: VectorName = VECTOR_NAME
    k: int = 12
    filters: Filters = Filters()


class Uploads:
    """The last uploads as they were embedded (vector and 7x7 grid), by token: the file is gone
    after its request, and its similarity maps are asked for afterwards."""

    def __init__(self, size: int = UPLOADS_KEPT) -> None:
        self.size, self._kept, self._lock = size, OrderedDict[str, ImageQuery](), threading.Lock()

    def keep(self, query: ImageQuery) -> str:
        with self._lock:
            self._kept[query.sha256] = query
            self._kept.move_to_end(query.sha256)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return query.sha256

    def get(self, token: str) -> ImageQuery:
        with self._lock:
            if token not in self._kept:
                raise NotFound("that uploaded poster is no longer held by the server: search with it again")
            return self._kept[token]


class RecommendRequest(BaseModel):
    positive: list[Annotated[str, Field(max_length=100)]] = Field(description="Point ids of liked posters (at least one).")
    negative: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, description="Point ids of disliked posters.")
    collection: str | None = Field(None, max_length=255)
    vector: VectorName = VECTOR_NAME
    k: int = Field(12, ge=1, le=100)
    year_min: int | None = None
    year_max: int | None = None
    genre: str | None = Field(None, max_length=200)
    query_token: str | None = Field(
        None, max_length=100, description="The token of an uploaded poster (an image search's query.token): one more liked example."
    )


class ExplainRequest(BaseModel):
    ids: list[Annotated[str, Field(max_length=100)]] = Field(
        description=f"Point ids of the neighbours to explain (at most {defaults.MAX_EXPLAIN}).", max_length=defaults.MAX_EXPLAIN
    )
    query_id: str | None = Field(None, max_length=100, description="The query as a stored poster's id ...")
    query_token: str | None = Field(None, max_length=100, description="... or as the token an image search returned.")
    collection: str | None = Field(None, max_length=255)


class Site:
    """What the routes share: the front object, the uploads kept for their maps, the page's settings."""

    def __init__(self, posters: Posters, era_sample: int) -> None:
        self.posters, self.uploads, self.era_sample = posters, Uploads(), era_sample
        self.thumbnails = Thumbnails()

    @property
    def default(self) -> str:
        return self.posters.collection

    def collection(self, name: str) -> Posters:
        """The named poster collection of this store; NotFound for any other name (Damaged, a 503,
        for one whose files are damaged)."""
        names = self.posters.collections()
        if name not in names:
            damaged = self.posters.damaged_collections()
            if name in damaged:
                raise Damaged(damaged[name])
            shown = name if len(name) <= 80 else name[:79] + "…"
            raise NotFound(f"no poster collection {shown!r} in this store (there are: {', '.join(names) or 'none'})")
        return self.posters.using(name)

    def searching(self, where: Where) -> Posters:
        """The collection of a search, checked to hold its vector."""
        posters = self.collection(where.collection)
        posters.check_vector(where.vector)
        return posters


def create_app(posters: Posters, allowed_hosts: tuple[str, ...] = LOCAL_HOSTS, era_sample: int = defaults.ERA_SAMPLE) -> FastAPI:
    """The app over an open front object; only requests naming one of `allowed_hosts` are answered."""
    app = FastAPI(
        title="poster search",
        description="Similar movie posters (VGG16 embeddings in Qdrant), recommendations and release-year prediction.",
        version="1",
        docs_url=None,  # Swagger UI and ReDoc come from a CDN: not served (see the module's docstring)
        redoc_url=None,
    )
    site = Site(posters, era_sample)
    _error_handlers(app)
    _page_policy(app)
    # Outermost last: the host is checked first, then where the request comes from, then the body is counted as it arrives.
    app.add_middleware(GZipMiddleware, minimum_size=4096)  # the poster map of a large collection is megabytes of numbers
    app.add_middleware(BodyLimit, limit=MAX_UPLOAD_BYTES + MULTIPART_SLACK)
    app.add_middleware(SameOrigin)
    app.add_middleware(HostCheck, allowed=allowed_hosts)
    _page_routes(app)
    _search_routes(app, site)
    _year_and_era_routes(app, site)
    _collection_routes(app, site)
    _poster_routes(app, site)
    _landing_routes(app, site)
    _browse_routes(app, site)
    return app


def _error_handlers(app: FastAPI) -> None:
    """Every error is one line of JSON with the status of its kind, never a traceback (not in the server log either)."""

    @app.exception_handler(PosterSearchError)
    def known(request: Request, error: PosterSearchError):  # said, not logged as a crash
        status = next((code for kind, code in STATUS.items() if isinstance(error, kind)), 400)
        return one_line(status, str(error))

    @app.exception_handler(UploadError)
    def bad_upload(request: Request, error: UploadError):
        return one_line(error.status, str(error))

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, error: RequestValidationError):
        parts = []
        for e in error.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "body", "path"))
            parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", "invalid"))
        return one_line(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    def unexpected(request: Request, error: Exception):
        return one_line(500, f"unexpected error: {type(error).__name__}")


def _page_policy(app: FastAPI) -> None:
    @app.middleware("http")
    async def page_policy(request: Request, call_next):
        """The page runs only its own script and loads only its own files (and the preview blob)."""
        response = await call_next(request)
        if request.url.path == "/" or request.url.path.startswith("/static/"):
            response.headers.update(PAGE_HEADERS)
        return response


def _page_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _where(site: Site):
    """The parameters every search takes, as one dependency."""

    def search_where(
        collection: Annotated[str | None, Q(max_length=255, description="Collection to search (default: the server's).")] = None,
        vector: Annotated[VectorName, Q(description="Stored vector to search by.")] = VECTOR_NAME,
        k: Annotated[int, Q(ge=1, le=100, description="How many results.")] = 12,
        year_min: Annotated[int | None, Q(description="Only posters from this year on.")] = None,
        year_max: Annotated[int | None, Q(description="Only posters up to this year.")] = None,
        genre: Annotated[str | None, Q(max_length=200, description="Only posters of this genre.")] = None,
    ) -> Where:
        filters = Filters(year_min, year_max, genre or None)
        filters.check(WEB_NAMES)
        return Where(collection or site.default, vector, k, filters)

    return search_where


def _read_upload(file: UploadFile) -> bytes:
    return file.file.read(MAX_UPLOAD_BYTES + 1)


def _shown(where: Where) -> dict:
    return {"collection": where.collection, "vector": where.vector, "k": where.k, "filters": asdict(where.filters)}


def _search_routes(app: FastAPI, site: Site) -> None:
    search_where = _where(site)

    @app.get("/api/collections", summary="The store's poster collections: count, embeddings, vectors, genres, years")
    def collections():
        names = site.posters.collections()
        damaged = site.posters.damaged_collections()
        return {
            "default": site.default,
            "collections": [site.posters.using(n).info().as_dict() for n in names],
            "damaged": [{"name": name, "problem": problem} for name, problem in damaged.items()],
        }

    @app.get("/api/collections/{name}", summary="One collection: count, embedding of each vector, genres, year range")
    def collection(name: str):
        return site.collection(name).info().as_dict()

    @app.post("/api/search/image", summary="Posters most similar to an uploaded image (embedded with VGG16)")
    def search_image(
        file: Annotated[UploadFile, File(description="A poster image, at most 20 MB.")], where: Annotated[Where, Depends(search_where)]
    ):
        data = _read_upload(file)
        with uploaded_image(data, file.filename) as path:
            try:
                result = site.searching(where).search(path, k=where.k, filters=where.filters, vector=where.vector)
            except PosterSearchError as e:
                raise type(e)(rename_in_message(str(e), path, file.filename)) from None
        assert isinstance(result.query, ImageQuery)
        token = site.uploads.keep(result.query) if result.query.grid is not None else result.query.sha256
        query = {"kind": "image", "name": file.filename, "token": token}
        return {"query": query, **_shown(where), "results": render.cards(where.collection, result.neighbours)}

    @app.get("/api/search/id/{point_id}", summary="More like this: neighbours of a stored poster, no model needed")
    def search_id(point_id: str, where: Annotated[Where, Depends(search_where)]):
        result = site.searching(where).search(id=point_id, k=where.k, filters=where.filters, vector=where.vector)
        return _film_answer("id", where, result)

    @app.get("/api/search/title", summary="Neighbours of the stored film with this title (and year)")
    def search_title(
        title: Annotated[str, Q(min_length=1, max_length=300)],
        where: Annotated[Where, Depends(search_where)],
        year: Annotated[int | None, Q(description="The film's year, when several share the title.")] = None,
    ):
        result = site.searching(where).search(title=title, year=year, k=where.k, filters=where.filters, vector=where.vector)
        return _film_answer("title", where, result)

    @app.post("/api/recommend", summary="Posters like the liked examples and unlike the disliked ones")
    def recommend(body: RecommendRequest):
        filters = Filters(body.year_min, body.year_max, body.genre or None)
        filters.check(WEB_NAMES)
        where = Where(body.collection or site.default, body.vector, body.k, filters)
        image = site.uploads.get(body.query_token) if body.query_token else None
        result = site.searching(where).recommend(body.positive, body.negative, k=where.k, filters=filters, vector=where.vector, query=image)
        query = {"kind": "recommend", "positive": body.positive, "negative": body.negative}
        if body.query_token:
            query["query_token"] = body.query_token
        return {"query": query, **_shown(where), "results": render.cards(where.collection, result.neighbours)}


def _film_answer(kind: str, where: Where, result) -> dict:
    return {
        "query": {"kind": kind, **render.film(where.collection, result.query)},
        **_shown(where),
        "results": render.cards(where.collection, result.neighbours),
    }


def _collection_routes(app: FastAPI, site: Site) -> None:
    search_where = _where(site)

    @app.post("/api/explain", summary="Similarity maps: where each neighbour's score comes from, cell by cell of VGG16's 7x7 grid")
    def explain(body: ExplainRequest):
        import time

        started = time.perf_counter()
        collection = body.collection or site.default
        posters = site.collection(collection)
        if (body.query_id is None) == (body.query_token is None):
            raise BadInput("name the query: a stored poster's id, or the token of an uploaded one")
        query = posters.film(body.query_id) if body.query_id is not None else site.uploads.get(str(body.query_token))
        maps = [e.as_dict() for e in posters.explain(query=query, ids=body.ids)]
        return {"collection": collection, "grid": 7, "maps": maps, "seconds": round(time.perf_counter() - started, 3)}

    @app.get(
        "/api/map",
        summary="Every poster of a collection in 2-D by its embedding (t-SNE), with the decades' path",
        description="200: the map. 202: it is being computed in the background (started by this request, or joined): "
        '{"status": "computing", "stage", "done", "total", "seconds"}; ask again (the page does every 0.7 s).',
    )
    def poster_map(where: Annotated[Where, Depends(search_where)]):
        from fastapi.responses import JSONResponse

        found = site.searching(where).map_status(where.vector, wait=0.5)  # a cached or small map, or an error, in this answer
        if isinstance(found, dict):
            return JSONResponse({"collection": where.collection, "vector": where.vector, **found}, status_code=202)
        return {
            "collection": where.collection,
            "vector": where.vector,
            "status": "ready",
            "computed_seconds": round(found.seconds, 2),
            **found.as_json(),
        }

    @app.get("/api/map/{index}", summary="The poster at a position of the map: id, title, year, poster (202 while it is computed)")
    def map_point(index: int, where: Annotated[Where, Depends(search_where)]):
        from fastapi.responses import JSONResponse

        posters = site.searching(where)
        result = posters.map_status(where.vector)
        if isinstance(result, dict):
            return JSONResponse({"collection": where.collection, "vector": where.vector, **result}, status_code=202)
        if not 0 <= index < len(result.ids):
            raise NotFound(f"the map of {where.collection!r} has {len(result.ids)} posters, no number {index}")
        point = posters.film(str(result.ids[index]))
        return {
            "index": index,
            "id": point.id,
            **render.poster_fields(point.poster),
            "poster_url": render.poster_url(where.collection, point.id),
        }

    @app.get("/api/timeline", summary="Each decade's most and least typical posters, and how far its centre moved")
    def timeline(where: Annotated[Where, Depends(search_where)]):
        steps = site.searching(where).timeline(where.vector).steps
        decades = []
        for step in steps:
            row = step.as_dict()
            for part in ("typical", "atypical"):
                row[part] = [{**p, "poster_url": render.poster_url(where.collection, p["id"])} for p in row[part]]
            decades.append(row)
        return {"collection": where.collection, "vector": where.vector, "decades": decades}


def _year_and_era_routes(app: FastAPI, site: Site) -> None:
    search_where = _where(site)

    @app.post("/api/predict-year", summary="Predicted release year of an uploaded poster, with the range held-out errors give")
    def predict_year(file: Annotated[UploadFile, File(description="A poster image, at most 20 MB.")]):
        data = _read_upload(file)
        with uploaded_image(data, file.filename) as path:
            try:
                return {"name": file.filename, **site.posters.predict_image_year(path)}
            except PosterSearchError as e:
                raise type(e)(rename_in_message(str(e), path, file.filename)) from None

    @app.get("/api/era", summary="Era figures: neighbour year difference vs random pairs, year model error by decade")
    def era(
        where: Annotated[Where, Depends(search_where)],
        sample: Annotated[int | None, Q(ge=10, le=100_000, description="Posters used as queries (seeded sample).")] = None,
    ):
        if where.k > 50:
            raise BadInput("k for the era figures is at most 50")
        report = site.searching(where).era(k=where.k, sample=sample or site.era_sample, vector=where.vector)
        return {**_shown(where), "coherence": report.as_dict(), "year_model": site.posters.year_model_summary()}


def _poster_routes(app: FastAPI, site: Site) -> None:
    @app.get("/api/posters/{collection}/{point_id}", summary="The poster file of a stored point", response_class=Response)
    def poster(
        collection: str,
        point_id: str,
        w: Annotated[
            int | None, Q(ge=16, le=1024, description="A JPEG this many pixels wide instead of the file (grids, the map).")
        ] = None,
    ):
        data = site.collection(collection).poster_bytes(point_id)  # read once, as it is checked inside the folder
        # The type comes from the image's own header, not its file name, and browsers may neither
        # sniff another nor run anything in it: a stored file is only ever shown as an image. A file
        # that is no image is not sent at all: the poster folder and file names come from the
        # store, which may come from elsewhere (posters_dir "/", file "etc/passwd").
        media_type = image_type(data)
        if media_type == "application/octet-stream":
            raise NotFound(f"the poster file of {point_id[:100]} is not an image")
        small = site.thumbnails.of(data, w) if w else None
        if small is not None:
            data, media_type = small, "image/jpeg"
        return Response(data, media_type=media_type, headers={"Cache-Control": "max-age=3600", **POSTER_HEADERS})


def _landing_routes(app: FastAPI, site: Site) -> None:
    @app.get(
        "/api/collections/{name}/overview",
        summary="Posters to start from: each decade's most typical posters, and a varied sample of the undated ones",
    )
    def overview(name: str, vector: Annotated[VectorName, Q(description="Stored vector that decides what is typical.")] = VECTOR_NAME):
        posters = site.collection(name)
        posters.check_vector(vector)
        starts = posters.starts(vector)
        groups = [
            {
                "label": g.label,
                "decade": g.decade,
                "count": g.count,
                "posters": [
                    {"id": i, **render.poster_fields(p), "similarity": round(s, 4), "poster_url": render.poster_url(name, i)}
                    for i, p, s in zip(g.ids, g.posters, g.similarity)
                ],
            }
            for g in starts.groups
        ]
        return {
            "collection": name,
            "vector": vector,
            "count": sum(g.count for g in starts.groups),
            "undated": sum(g.count for g in starts.groups if g.decade is None),
            "computed_seconds": round(starts.seconds, 3),
            "groups": groups,
        }


def _browse_routes(app: FastAPI, site: Site) -> None:
    @app.get(
        "/api/collections/{name}/browse", summary="Every poster of a collection, a page at a time: sorted, filtered, from Qdrant's indexes"
    )
    def browse(
        name: str,
        sort: Annotated[Sort, Q(description="title (A to Z, a leading The/A/An ignored), year (the undated last) or added.")] = "title",
        order: Annotated[Literal["asc", "desc"], Q(description="asc or desc.")] = "asc",
        decade: Annotated[int | None, Q(description="Only catalog years of this decade (1960: 1960-1969).")] = None,
        genre: Annotated[str | None, Q(max_length=200, description="Only posters of this genre.")] = None,
        status: Annotated[
            YearStatus | None, Q(description="catalog: a catalog year; predicted: only a predicted one; none: neither.")
        ] = None,
        limit: Annotated[int, Q(ge=1, le=200, description="Posters in this page.")] = 48,
        after: Annotated[str | None, Q(max_length=400, description="The `next` of the page before.")] = None,
    ):
        page = site.collection(name).browse(
            sort, descending=order == "desc", decade=decade, genre=genre, status=status, limit=limit, after=after
        )
        return {
            "collection": name,
            "sort": sort,
            "order": order,
            "filters": page.filters.as_dict(),
            "total": page.total,
            "posters": [render.poster_card(name, p.id, p.poster) for p in page.posters],
            "next": page.next,
        }

    @app.get("/api/collections/{name}/facets", summary="Posters by decade, genre and year status: counts for the browse filters")
    def facets(name: str):
        return site.collection(name).facets().as_dict()

    @app.get("/api/collections/{name}/suggest", summary="Stored films whose titles fit a few typed letters, best first")
    def suggest(
        name: str,
        q: Annotated[str, Q(min_length=1, max_length=200, description="The letters typed so far.")],
        limit: Annotated[int, Q(ge=1, le=50)] = 8,
    ):
        found = site.collection(name).suggest(q, limit)
        return {"collection": name, "q": q, "suggestions": [render.poster_card(name, p.id, p.poster) for p in found.posters]}


def image_type(data: bytes) -> str:
    """The MIME type of an image from its header (Pillow reads no pixels for this)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "", "application/octet-stream")
    except Exception:  # not an image after all: let nothing interpret it
        return "application/octet-stream"
