"""The HTTP layer of the mcuprof REST client: one request with retries, and the errors a
server's answers become. :class:`profiler_client.client.Client` builds the API's resources on it.

Retries: connection errors, timeouts and 5xx answers are retried with exponential backoff
(``backoff_s`` × 2ⁿ, capped at :data:`BACKOFF_MAX_S`), at most ``retries`` times; 4xx answers
never are. Requests that are not idempotent (submitting jobs, taking a lease) are retried
only when the request provably never reached the application (the connection could not be
made, or the server answered 502/503), so a lost answer never submits a job twice.

Errors are :class:`ApiError` (a :class:`~bench_firmware.errors.McuprofError`) carrying the
server's ``detail`` message; refused models are also a :class:`ModelError`, a lease the agent
no longer holds also a :class:`QueueError`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from bench_firmware.errors import McuprofError, ModelError
from profiler_client.errors import QueueError

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT_S = 30.0  # seconds for one request (connect, read, write each)
DEFAULT_RETRIES = 4  # further attempts after the first one fails
BACKOFF_BASE_S = 0.25  # seconds before the first retry; doubles every retry
BACKOFF_MAX_S = 8.0  # seconds: the longest wait between two attempts
BACKOFF_JITTER = 0.1  # fraction of each wait added at random, so agents do not retry in step
USER_AGENT = "mcuprof-client"

_RETRY_ANY = frozenset({500, 502, 503, 504})
# Answers that mean the application never handled the request (a proxy or the server's
# front door answered), so even a non-idempotent request can be sent again.
_RETRY_UNSENT = frozenset({502, 503})

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
H = TypeVar("H", bound="HttpClient")


# --------------------------------------------------------------------------------------------
# Errors


class ApiError(McuprofError):
    """The mcuprof server refused or failed a request."""

    def __init__(self, message: str, *, status_code: int | None = None, detail: str | None = None,
                 method: str = "", url: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail
        self.method = method
        self.url = url


class ServerUnavailableError(ApiError):
    """The mcuprof server could not be reached, or kept failing."""


class AuthError(ApiError):
    """The server refused the token (missing, unknown, or not allowed to do this)."""


class NotFoundError(ApiError):
    """The server has no such resource."""


class ModelRejectedError(ApiError, ModelError):
    """The server refused the model (not a .tflite, not int8, an unsupported op, too big)."""


class LeaseLostError(ApiError, QueueError):
    """The agent reported for a lease it no longer holds (expired, cancelled, reassigned)."""


def _detail(response: httpx.Response) -> str:
    """The server's ``detail`` message, or the start of the body when it has none."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] if text else response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list):  # FastAPI's validation errors: [{"loc": ..., "msg": ...}]
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                    parts.append(f"{loc}: {item.get('msg', item)}" if loc else str(item.get("msg")))
                else:
                    parts.append(str(item))
            return "; ".join(parts)
        return str(detail)
    return str(body)[:300]


def parse_body(response: httpx.Response, validate: Callable[[bytes], T]) -> T:
    """The answer's body validated against the contract (``profiler_client/schemas.py``)."""
    try:
        return validate(response.content)
    except ValidationError as e:
        raise ApiError(f"the server's answer to {response.request.method} "
                       f"{response.request.url} does not match this client's contract "
                       f"(different mcuprof versions?): {e.errors()[:3]}",
                       status_code=response.status_code) from e


class HttpClient:
    """Requests to one mcuprof server, retried as the module docstring says.

    ``url``: the server's base URL (http or https); ``token``: sent as a bearer token when
    not None. ``http``: an ``httpx.Client`` to send requests with (it is not closed by
    :meth:`close`); ``transport``: a transport for the client made here. ``sleep`` is what
    waits between retries (tests pass a fake clock). Reads no environment: that is
    :class:`~profiler_client.client.Client`'s job.

    Thread-safe as ``httpx.Client`` is: an agent's board threads share one.
    """

    def __init__(self, url: str, token: str | None = None, *,
                 http: httpx.Client | None = None, transport: httpx.BaseTransport | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
                 backoff_s: float = BACKOFF_BASE_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._own_http = http is None
        self._http = http if http is not None else httpx.Client(
            transport=transport, timeout=httpx.Timeout(timeout_s), follow_redirects=True)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Closes the connection pool (not an ``http`` client passed in)."""
        if self._own_http:
            self._http.close()

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _absolute(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if not path.startswith(API_PREFIX) and not path.startswith("/"):
            path = "/" + path
        return self.url + (path if path.startswith(API_PREFIX) else API_PREFIX + path)

    def _wait_before_retry(self, attempt: int) -> None:
        delay = min(BACKOFF_MAX_S, self.backoff_s * (2 ** attempt))
        self._sleep(delay * (1.0 + BACKOFF_JITTER * random.random()))

    def request(self, method: str, path: str, *, idempotent: bool = True,
                expect: Sequence[int] = (), **kwargs: Any) -> httpx.Response:
        """Sends one request (``path`` under ``/api/v1`` unless absolute) with retries, and
        returns a 2xx response; raises :class:`ApiError` for anything else."""
        url = self._absolute(path)
        last_error = "no answer"
        answered = False  # whether the last failure was an answer (5xx), not a lost connection
        for attempt in range(self.retries + 1):
            if attempt:
                self._wait_before_retry(attempt - 1)
            try:
                response = self._http.request(method, url, headers=self._headers(),
                                              timeout=self.timeout_s, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
                last_error, answered = f"cannot connect ({str(e) or type(e).__name__})", False
                continue
            except httpx.TransportError as e:
                last_error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                answered = False
                if idempotent:
                    continue
                # The request may have reached the server: sending it again could repeat it.
                raise self._unavailable(method, url, last_error, attempt + 1, answered) from e
            if response.is_success or response.status_code in expect:
                return response
            status = response.status_code
            if status in (_RETRY_ANY if idempotent else _RETRY_UNSENT):
                last_error = f"{status} {response.reason_phrase}: {_detail(response)}"
                answered = True
                continue
            raise self._error(method, url, response)
        raise self._unavailable(method, url, last_error, self.retries + 1, answered)

    def _unavailable(self, method: str, url: str, error: str, attempts: int,
                     answered: bool) -> ServerUnavailableError:
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        if answered:
            text = (f"the mcuprof server at {self.url} keeps failing{tries}: {method} {url}: "
                    f"{error}; its log says why")
        else:
            text = (f"the mcuprof server at {self.url} is not reachable{tries}: {method} {url}: "
                    f"{error}. Start one with `mcuprof serve`, or point MCUPROF_SERVER or "
                    f"--server at the right address.")
        return ServerUnavailableError(text, method=method, url=url)

    def _error(self, method: str, url: str, response: httpx.Response) -> ApiError:
        status = response.status_code
        detail = _detail(response)
        path = url[len(self.url):] if url.startswith(self.url) else url
        context = f" ({method} {path}: {status} {response.reason_phrase})"
        fields: dict[str, Any] = {"status_code": status, "detail": detail, "method": method,
                                  "url": url}
        if status in (401, 403):
            hint = ("" if self.token else
                    "; no token was sent: pass --token or set MCUPROF_TOKEN (create one with "
                    "`mcuprof token create --role user`)")
            return AuthError(f"{detail}{hint}{context}", **fields)
        if status == 404:
            return NotFoundError(f"{detail}{context}", **fields)
        if status in (409, 410) and "/leases/" in path:
            return LeaseLostError(f"{detail}{context}", **fields)
        if status in (413, 415, 422) and path.startswith(f"{API_PREFIX}/models"):
            return ModelRejectedError(f"{detail}{context}", **fields)
        if status >= 500:
            return ServerUnavailableError(f"the server failed: {detail}{context}", **fields)
        return ApiError(f"{detail}{context}", **fields)

    def _one(self, method: str, path: str, model: type[M], *, idempotent: bool = True,
             **kwargs: Any) -> M:
        """A request whose answer is one ``model``."""
        response = self.request(method, path, idempotent=idempotent, **kwargs)
        return parse_body(response, model.model_validate_json)

    def _many(self, method: str, path: str, adapter: TypeAdapter[T], *,
              idempotent: bool = True, **kwargs: Any) -> T:
        """A request whose answer is a list (``adapter`` validates it)."""
        response = self.request(method, path, idempotent=idempotent, **kwargs)
        return parse_body(response, adapter.validate_json)

    @staticmethod
    def _params(**params: Any) -> dict[str, Any]:
        return {k: v for k, v in params.items() if v is not None}

    # -- models --------------------------------------------------------------------------
