"""JSON request bodies read with a size limit and parsed in a worker thread.

FastAPI parses a JSON body with ``json.loads`` on the event loop: a body of a few MiB holds
up every other request while it is parsed, and one nested thousands deep ends in a
``RecursionError``. ``JSONRoute`` (the routers' ``route_class``) reads the body first,
refuses it past ``MAX_JSON_BODY_BYTES`` (413) or nested too deeply (422), and hands FastAPI
the parsed value, so only the validation of the parsed value is left to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.params import Form
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.types import Message

# Bytes of one JSON request body. The largest legitimate one, a MeasurementIn at its limits
# (MAX_OUTPUT_VALUES outputs, MAX_LOG_LINES serial lines, MAX_LAYERS layers), is about 4 MiB.
MAX_JSON_BODY_BYTES = 8 * 1024 * 1024


def json_invalid(position: int, reason: str) -> RequestValidationError:
    """The error FastAPI gives for a body that is not JSON (the app's handler words it)."""
    return RequestValidationError([{"type": "json_invalid", "loc": ("body", position),
                                    "msg": "JSON decode error", "input": {},
                                    "ctx": {"error": reason}}])


def parse_json(raw: bytes) -> Any:
    """``json.loads`` for a worker thread: a body nested too deeply or not UTF-8 is a 422
    (not a ``RecursionError``, or FastAPI's bare 400)."""
    try:
        return json.loads(raw)
    except RecursionError as e:
        raise json_invalid(0, "nested too deeply") from e
    except UnicodeDecodeError as e:
        raise json_invalid(e.start, "not UTF-8 text") from e


async def read_body(request: Request, limit: int, advice: str) -> bytes:
    """The request body, refused with a 413 past ``limit`` bytes (checked against
    Content-Length first, then while it streams in); ``advice`` says what to do instead."""
    too_large = HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                              detail=f"the JSON body is larger than {limit} bytes; {advice}")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(request: Request) -> bool:
    """Whether FastAPI would parse the body as JSON (it does without a Content-Type too)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return not media or media == "application/json" or (media.startswith("application/")
                                                         and media.endswith("+json"))


class _ParsedRequest(Request):
    """A request whose body was read and parsed already."""

    def __init__(self, request: Request, raw: bytes, parsed: Any) -> None:
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        super().__init__(request.scope, replay)
        self._raw, self._parsed = raw, parsed

    async def body(self) -> bytes:
        return self._raw

    async def json(self) -> Any:
        if isinstance(self._parsed, Exception):
            raise self._parsed  # the decode error, which FastAPI reports
        return self._parsed


class JSONRoute(APIRoute):
    """An ``APIRoute`` whose JSON body is size-limited and parsed off the event loop."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None or isinstance(self.body_field.field_info, Form):
            return handler

        async def parse_first(request: Request) -> Response:
            if not _is_json(request):
                return await handler(request)
            raw = await read_body(request, MAX_JSON_BODY_BYTES,
                                  "see /docs for the limits of each field")
            parsed: Any = None
            if raw:
                try:
                    parsed = await run_in_threadpool(parse_json, raw)
                except ValueError as e:  # not JSON (JSONDecodeError) or not text
                    parsed = e
            return await handler(_ParsedRequest(request, raw, parsed))

        return parse_first
