"""The demo's HTTP face: the static page (package data) and a small JSON/PNG API over a :class:`Demo`.

``GET /api/model`` describes the model; ``GET /api/examples/{i}`` and ``POST /api/upload?name=`` return an input
for the page; ``POST /api/generate?seed=`` takes class ids (label-map models) or a PNG photo and answers the
output PNG with its latency in ``X-Generate-Ms``. An expected failure (a bad file, a wrong size) is a 4xx with
``{"error": message}``, never a traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pix2pix.errors import DataError, Pix2PixError
from pix2pix.serving.demo import Demo, UploadTooLarge, check_upload_size

STATIC_DIR = Path(__file__).parent / "static"
Handler = Callable[[Request], Awaitable[Response]]


def _expected_failures(handler: Handler) -> Handler:
    """Answer a :class:`Pix2PixError` with 400 (413 for an oversized body) and its one-line message."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Pix2PixError as error:
            return JSONResponse({"error": str(error)}, status_code=413 if isinstance(error, UploadTooLarge) else 400)

    return wrapped


def _seed(request: Request) -> int:
    """The ``seed`` query value (default 0); DataError naming it when it is not a whole number."""
    text = request.query_params.get("seed", "0")
    try:
        return int(text)
    except ValueError:
        raise DataError(f"seed={text!r} is not a whole number; give one such as seed=0") from None


async def _body(request: Request, name: str) -> bytes:
    """The request body, refused before reading it when it announces more than an upload may hold."""
    check_upload_size(int(request.headers.get("content-length") or 0), name)
    return await request.body()


def build_app(demo: Demo, hosts: Sequence[str]) -> Starlette:
    """The Starlette app serving ``demo`` to requests whose ``Host`` header is one of ``hosts`` (``"*"``: any)."""

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html")

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def model(request: Request) -> Response:
        return JSONResponse(demo.info())

    async def example(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(demo.example, int(request.path_params["index"])))

    async def upload(request: Request) -> Response:
        name = request.query_params.get("name", "upload")
        data = await _body(request, name)
        return JSONResponse(await run_in_threadpool(demo.upload, data, name))

    async def generate(request: Request) -> Response:
        seed = _seed(request)
        data = await _body(request, "the generate request")
        make = demo.generate_from_ids if demo.canvas else demo.generate_from_png
        result = await run_in_threadpool(make, data, seed)
        headers = {"X-Generate-Ms": f"{result.latency_ms:.1f}", "Cache-Control": "no-store"}
        return Response(result.png, media_type="image/png", headers=headers)

    routes = [
        Route("/", index),
        Route("/health", health),
        Route("/api/model", model),
        Route("/api/examples/{index:int}", _expected_failures(example)),
        Route("/api/upload", _expected_failures(upload), methods=["POST"]),
        Route("/api/generate", _expected_failures(generate), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))])
