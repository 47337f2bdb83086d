"""The HTTP routes: the page, and the JSON API it uses (its OpenAPI description at /openapi.json).

FastAPI (on Starlette, served by uvicorn): typed query parameters are validated and documented
from the signatures below, multipart uploads come with python-multipart, and its TestClient
drives the same app in tests. Routes are plain `def`s: FastAPI runs them in a thread pool, so a
search never blocks the server's event loop, and the service's lock keeps them one at a time.

Around the routes (web/guards.py): only the host names the server was started for are answered
(a web page elsewhere cannot rebind its name to 127.0.0.1 and read the store), request bodies
stop at the upload limit however they are framed, another site's page cannot make a browser call
the API (403), and every error is one line of JSON. There is no /docs or /redoc: FastAPI's
interactive docs load Swagger's JavaScript from a CDN, outside the page's policy and blank offline;
/openapi.json describes the same API for any viewer.
"""

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, File, Request, UploadFile
from fastapi import Query as Q
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from errors import UserError
from search.nearest import Filters
from store.engine import StoreDamaged
from store.schema import VECTOR_NAME
from web.guards import LOCAL_HOSTS, BodyLimit, HostCheck, SameOrigin, one_line
from web.service import NotFound, PosterService, Query
from web.uploads import MAX_UPLOAD_BYTES, UploadError, rename_in_message, uploaded_image

STATIC = Path(__file__).parent / "static"
MULTIPART_SLACK = 64 * 1024  # form boundaries and headers around the file itself
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
POSTER_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}
StoredVector = Literal["vgg16", "vgg16_style"]
WEB_NAMES = ("year_min", "year_max")  # how messages name the year bounds: the API's parameters, not the CLI's options


class RecommendRequest(BaseModel):
    positive: list[Annotated[str, Field(max_length=100)]] = Field(description="Point ids of liked posters (at least one).")
    negative: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, description="Point ids of disliked posters.")
    collection: str | None = Field(None, max_length=255)
    vector: StoredVector = VECTOR_NAME
    k: int = Field(12, ge=1, le=100)
    year_min: int | None = None
    year_max: int | None = None
    genre: str | None = Field(None, max_length=200)


def create_app(service: PosterService, allowed_hosts: tuple[str, ...] = LOCAL_HOSTS) -> FastAPI:
    """The app over an open service; only requests naming one of `allowed_hosts` are answered."""
    app = FastAPI(
        title="poster search",
        description="Similar movie posters (VGG16 embeddings in Qdrant), recommendations and release-year prediction.",
        version="1",
        docs_url=None,  # Swagger UI and ReDoc come from a CDN: not served (see the module's docstring)
        redoc_url=None,
    )
    _error_handlers(app)
    _page_policy(app)
    # Outermost last: the host is checked first, then where the request comes from, then the body is counted as it arrives.
    app.add_middleware(GZipMiddleware, minimum_size=4096)  # the poster map of a large collection is megabytes of numbers
    app.add_middleware(BodyLimit, limit=MAX_UPLOAD_BYTES + MULTIPART_SLACK)
    app.add_middleware(SameOrigin)
    app.add_middleware(HostCheck, allowed=allowed_hosts)
    _page_routes(app)
    _search_routes(app, service)
    _year_and_era_routes(app, service)
    _collection_routes(app, service)
    _poster_routes(app, service)
    _landing_routes(app, service)
    return app


def _error_handlers(app: FastAPI) -> None:
    """Every error is one line of JSON with its status, never a traceback (not in the server log either)."""

    @app.exception_handler(NotFound)
    def not_found(request: Request, error: NotFound):
        return one_line(404, str(error))

    @app.exception_handler(StoreDamaged)
    def damaged(request: Request, error: StoreDamaged):  # known damage: said, not logged as a crash
        return one_line(503, str(error))

    @app.exception_handler(UploadError)
    def bad_upload(request: Request, error: UploadError):
        return one_line(error.status, str(error))

    @app.exception_handler(UserError)
    def bad_request(request: Request, error: UserError):
        return one_line(400, str(error))

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


def _query(service: PosterService):
    """The parameters every search takes, as one dependency."""

    def search_query(
        collection: Annotated[str | None, Q(max_length=255, description="Collection to search (default: the server's).")] = None,
        vector: Annotated[StoredVector, Q(description="Stored vector to search by.")] = VECTOR_NAME,
        k: Annotated[int, Q(ge=1, le=100, description="How many results.")] = 12,
        year_min: Annotated[int | None, Q(description="Only posters from this year on.")] = None,
        year_max: Annotated[int | None, Q(description="Only posters up to this year.")] = None,
        genre: Annotated[str | None, Q(max_length=200, description="Only posters of this genre.")] = None,
    ) -> Query:
        filters = Filters(year_min, year_max, genre or None)
        filters.check(WEB_NAMES)
        return Query(collection or service.default_collection, vector, k, filters)

    return search_query


def _read_upload(file: UploadFile) -> bytes:
    return file.file.read(MAX_UPLOAD_BYTES + 1)


def _search_routes(app: FastAPI, service: PosterService) -> None:
    search_query = _query(service)

    @app.get("/api/collections", summary="The store's poster collections: count, embeddings, vectors, genres, years")
    def collections():
        return {
            "default": service.default_collection,
            "collections": [service.info(n) for n in service.collection_names()],
            "damaged": service.damaged_collections(),
        }

    @app.get("/api/collections/{name}", summary="One collection: count, embedding of each vector, genres, year range")
    def collection(name: str):
        return service.info(name)

    @app.post("/api/search/image", summary="Posters most similar to an uploaded image (embedded with VGG16)")
    def search_image(
        file: Annotated[UploadFile, File(description="A poster image, at most 20 MB.")], query: Annotated[Query, Depends(search_query)]
    ):
        data = _read_upload(file)
        with uploaded_image(data, file.filename) as path:
            try:
                token, results = service.search_image(path, query)
            except UserError as e:
                raise type(e)(rename_in_message(str(e), path, file.filename)) from None
        return {"query": {"kind": "image", "name": file.filename, "token": token}, **_where(query), "results": results}

    @app.get("/api/search/id/{point_id}", summary="More like this: neighbours of a stored poster, no model needed")
    def search_id(point_id: str, query: Annotated[Query, Depends(search_query)]):
        film, results = service.search_point(point_id, query)
        return {"query": {"kind": "id", **film}, **_where(query), "results": results}

    @app.get("/api/search/title", summary="Neighbours of the stored film with this title (and year)")
    def search_title(
        title: Annotated[str, Q(min_length=1, max_length=300)],
        query: Annotated[Query, Depends(search_query)],
        year: Annotated[int | None, Q(description="The film's year, when several share the title.")] = None,
    ):
        film, results = service.search_title(title, year, query)
        return {"query": {"kind": "title", **film}, **_where(query), "results": results}

    @app.post("/api/recommend", summary="Posters like the liked examples and unlike the disliked ones")
    def recommend(body: RecommendRequest):
        filters = Filters(body.year_min, body.year_max, body.genre or None)
        filters.check(WEB_NAMES)
        query = Query(body.collection or service.default_collection, body.vector, body.k, filters)
        results = service.recommend(body.positive, body.negative, query)
        return {"query": {"kind": "recommend", "positive": body.positive, "negative": body.negative}, **_where(query), "results": results}


class ExplainRequest(BaseModel):
    ids: list[Annotated[str, Field(max_length=100)]] = Field(
        description="Point ids of the neighbours to explain (at most 24).", max_length=24
    )
    query_id: str | None = Field(None, max_length=100, description="The query as a stored poster's id ...")
    query_token: str | None = Field(None, max_length=100, description="... or as the token an image search returned.")
    collection: str | None = Field(None, max_length=255)


def _collection_routes(app: FastAPI, service: PosterService) -> None:
    search_query = _query(service)

    @app.post("/api/explain", summary="Similarity maps: where each neighbour's score comes from, cell by cell of VGG16's 7x7 grid")
    def explain(body: ExplainRequest):
        query = Query(body.collection or service.default_collection)
        return {"collection": query.collection, **service.explain(query, body.ids, body.query_id, body.query_token)}

    @app.get("/api/map", summary="Every poster of a collection in 2-D by its embedding (t-SNE), with the decades' path")
    def poster_map(query: Annotated[Query, Depends(search_query)]):
        return service.poster_map(query)

    @app.get("/api/map/{index}", summary="The poster at a position of the map: id, title, year, poster")
    def map_point(index: int, query: Annotated[Query, Depends(search_query)]):
        return service.map_point(query, index)

    @app.get("/api/timeline", summary="Each decade's most and least typical posters, and how far its centre moved")
    def timeline(query: Annotated[Query, Depends(search_query)]):
        return service.timeline(query)


def _year_and_era_routes(app: FastAPI, service: PosterService) -> None:
    search_query = _query(service)

    @app.post("/api/predict-year", summary="Predicted release year of an uploaded poster, with the range held-out errors give")
    def predict_year(file: Annotated[UploadFile, File(description="A poster image, at most 20 MB.")]):
        data = _read_upload(file)
        with uploaded_image(data, file.filename) as path:
            try:
                return {"name": file.filename, **service.predict_year(path)}
            except UserError as e:
                raise type(e)(rename_in_message(str(e), path, file.filename)) from None

    @app.get("/api/era", summary="Era figures: neighbour year difference vs random pairs, year model error by decade")
    def era(
        query: Annotated[Query, Depends(search_query)],
        sample: Annotated[int | None, Q(ge=10, le=100_000, description="Posters used as queries (seeded sample).")] = None,
    ):
        if query.k > 50:
            raise UserError("k for the era figures is at most 50")
        return {**_where(query), **service.era(query, sample)}


def _poster_routes(app: FastAPI, service: PosterService) -> None:
    @app.get("/api/posters/{collection}/{point_id}", summary="The poster file of a stored point", response_class=FileResponse)
    def poster(collection: str, point_id: str):
        path = service.poster_file(collection, point_id)
        # The type comes from the image's own header, not its file name, and browsers may neither
        # sniff another nor run anything in it: a stored file is only ever shown as an image. A file
        # that is no image is not sent at all: the poster folder and file names come from the
        # store, which may come from elsewhere (posters_dir "/", file "etc/passwd").
        media_type = image_type(path)
        if media_type == "application/octet-stream":
            raise NotFound(f"the poster file of {point_id[:100]} is not an image")
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "max-age=3600", **POSTER_HEADERS})


def _landing_routes(app: FastAPI, service: PosterService) -> None:
    @app.get(
        "/api/collections/{name}/overview",
        summary="Posters to start from: each decade's most typical posters, and a varied sample of the undated ones",
    )
    def overview(name: str, vector: Annotated[StoredVector, Q(description="Stored vector that decides what is typical.")] = "vgg16"):
        return service.starts(Query(name, vector))


def image_type(path: Path) -> str:
    """The MIME type of an image file from its header (Pillow reads no pixels for this)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return Image.MIME.get(image.format or "", "application/octet-stream")
    except Exception:  # not an image after all: let nothing interpret it
        return "application/octet-stream"


def _where(query: Query) -> dict:
    return {"collection": query.collection, "vector": query.vector, "k": query.k, "filters": asdict(query.filters)}
