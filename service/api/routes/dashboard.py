"""The dashboard's pages: ``/`` (overview), ``/device/{class}``, ``/model/{id}``, ``/jobs``,
``/searches`` and ``/searches/{id}`` (DNAS runs), and their static files (``/static/...``,
plotly.js included: never a CDN).

Pages are server-rendered (``service.dashboard``) and left out of the OpenAPI schema. A page
asks for a user token once (``/login``), or takes a one-time login code
(``/login?code=...``, the URL ``mcuprof demo`` prints) in exchange for a browser session, and
keeps it in an HttpOnly, SameSite=Strict cookie (sent with the export links to ``/api/v1``
too; a page of another site gets neither the cookie nor, for writes, past the Origin check).
With auth off (unsafe) pages are open.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import urlencode

import pandas as pd
from fastapi import APIRouter, Form, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from bench_firmware.boards import get_board
from bench_firmware.errors import McuprofError
from profiler_client.schemas import PredictOut
from service.api.deps import SessionDep, SettingsDep
from service.auth import (
    ANONYMOUS,
    SESSION_COOKIE,
    AuthError,
    Principal,
    authenticate,
    exchange_login_code,
)
from service.calibrations import calibration_out
from service.calibrations import listed as calibrations_of
from service.config import Settings
from service.dashboard import queries, search_queries
from service.dashboard.figures import device_figures, model_figures, scatter_kinds
from service.dashboard.labels import CYCLE_MODEL, KINDS, latency_kind, latency_title, mixed
from service.dashboard.render import asset, render
from service.dashboard.search_figures import epoch_figures, pareto_figure, verified_figure
from service.db.engine import Database
from service.db.models import JOB_STATES, NAME_LENGTH, Model, SearchRun
from service.fits_store import ensure_fresh
from service.fitting.frames import BACKBONE_TAG
from service.predict import predict, subject_from_analysis
from service.queue import NotFoundError, parse_device_class
from service.twin_band import board_of, device_class_view, twin_view

router = APIRouter(include_in_schema=False)
logger = logging.getLogger("mcuprof.dashboard")

TOKEN_COOKIE = SESSION_COOKIE
TOKEN_COOKIE_MAX_AGE = 30 * 24 * 3600  # seconds a signed-in browser keeps its token
STATIC_MAX_AGE = 365 * 24 * 3600  # seconds: static URLs carry a version or a digest
MAX_ID = 2**31 - 1


def _viewer(request: Request, session: Session, settings: Settings) -> Principal | None:
    """Who looks at the page; None when a token is required and none valid was sent."""
    if not settings.auth_required:
        return ANONYMOUS
    header = request.headers.get("authorization")
    cookie = request.cookies.get(TOKEN_COOKIE)
    if not header and cookie:
        header = f"Bearer {cookie}"
    try:
        return authenticate(session, header)
    except AuthError:
        return None


def _html(body: str, status_code: int = status.HTTP_200_OK) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"})


def _login_page(request: Request, error: str | None = None,
                status_code: int = status.HTTP_200_OK) -> HTMLResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _html(render("login.html", title="Sign in", nav="", next=target, error=error),
                 status_code)


def _not_found(message: str) -> HTMLResponse:
    return _html(render("not_found.html", title="Not found", nav="", message=message),
                 status.HTTP_404_NOT_FOUND)


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@router.get("/")
def overview(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Devices and their health, the queue by state, recent jobs and models."""
    if _viewer(request, session, settings) is None:
        return _login_page(request)
    return _html(render(
        "overview.html", title="Overview", nav="overview",
        totals=queries.totals(session), queue=queries.job_counts(session),
        classes=queries.class_rows(session), devices=queries.device_rows(session),
        recent=queries.recent_jobs(session), models=queries.recent_models(session)))


@router.get("/device/{device_class}")
def device_page(request: Request, session: SessionDep, settings: SettingsDep,
                device_class: str,
                kernels: Annotated[str | None, Query(max_length=8)] = None) -> Response:
    """Latency vs ops with each backbone's fitted line, residuals, the fits, the boards."""
    if _viewer(request, session, settings) is None:
        return _login_page(request)
    try:
        cls = parse_device_class(device_class[:NAME_LENGTH])
    except McuprofError as e:
        return _not_found(str(e))
    session.rollback()  # read after the refit, not in a snapshot taken before it
    ensure_fresh(_db(request), device_class=cls.name)
    paths = queries.kernel_paths(session, cls.name)
    kern = kernels if kernels in paths else (paths[0] if paths else "dsp")
    scatter = queries.scatter_frame(session, cls.name)
    scatter = scatter[scatter["kernels"] == kern]
    fits = [f for f in queries.current_fits(session, cls.name) if f.kernels == kern]
    notes = [n for p in queries.partition_rows(session, cls.name) if p.kernels == kern
             for n in p.notes]
    per_layer = next((f.coefficients for f in fits if f.kind == "per_layer"), None)
    figures = (device_figures(scatter, [f for f in fits if f.kind == "ops_line"],
                              backend=cls.backend) if len(scatter) else {})
    kinds = list(dict.fromkeys(scatter_kinds(scatter, cls.backend).tolist())) if len(scatter) \
        else [latency_kind(None, cls.backend)]
    board = get_board(cls.board) if cls.board != "host" else None
    view = device_class_view(session, cls.name, kern)
    return _html(render(
        "device.html", title=cls.name, nav="", device_class=cls.name, board=board,
        latency_kinds=kinds, latency_label=latency_title(kinds), mixed_sources=mixed(kinds),
        kernels=kern, kernel_paths=paths, n_points=len(scatter), figures=figures, fits=fits,
        notes=notes, per_layer=per_layer, devices=queries.device_rows(session,
                                                                      device_class=cls.name),
        queue=queries.job_counts(session, device_class=cls.name),
        recent=queries.recent_jobs(session, device_class=cls.name),
        error_band=view.band if view else None,
        calibrated_band=view.applied if view and view.calibration else None,
        calibrations=[calibration_out(c) for c in calibrations_of(session, board=cls.board)]))


def _prediction(session: Session, model: Model, backbone: str | None) -> PredictOut | None:
    subject = subject_from_analysis(model.analysis, name=model.name, backbone=backbone)
    try:
        return predict(session, subject, [], kernels="dsp")
    except NotFoundError:
        return None  # no device has a latency model yet


@router.get("/model/{model_id}")
def model_page(request: Request, session: SessionDep, settings: SettingsDep,
               model_id: int) -> Response:
    """Per-layer cycles and MAC/cycle, memory against every board, predicted vs observed
    latency on every device (each labelled measured, cycle-model or Renode-estimated by its
    cycle source), the measurements with their latency and energy provenance."""
    if _viewer(request, session, settings) is None:
        return _login_page(request)
    session.rollback()
    ensure_fresh(_db(request))
    model = session.get(Model, model_id) if 1 <= model_id <= MAX_ID else None
    if model is None:
        return _not_found(f"There is no model {model_id}.")
    tags = {t.key: t.value for t in model.tags}
    measured = queries.model_measurements(session, model.id)
    layers = queries.latest_layers(session, model.id)
    prediction = _prediction(session, model, tags.get(BACKBONE_TAG))
    frame = pd.DataFrame([(m.device_class, m.latency_ms, m.latency_kind.key) for m in measured
                          if m.latency_ms is not None and m.kernels == "dsp"],
                         columns=["device_class", "latency_ms", "latency_kind"])
    medians = frame.groupby("device_class")["latency_ms"].median().to_dict()
    observed = {d: [KINDS[k] for k in dict.fromkeys(g)]
                for d, g in frame.groupby("device_class")["latency_kind"]}
    predicted = {p.device: p for p in prediction.predictions} if prediction else {}
    table = [{"device": d, "observed": medians.get(d),
              "observed_label": latency_title(observed.get(d, [])),
              "prediction": predicted.get(d)}
             for d in sorted(set(medians) | set(predicted))]
    has_layers = any(any(x.get("cycles") is not None for x in rows) for rows in layers.values())
    # The kind of each (device class, kernels)'s latest measurement: the one whose layers
    # the per-layer figures show.
    layer_kinds = {(m.device_class, m.kernels): m.latency_kind for m in measured}
    figures = model_figures(layers, model.analysis, frame, prediction, layer_kinds)
    kinds = [m.latency_kind for m in measured if m.latency_ms is not None]
    if not has_layers:
        figures = {k: v for k, v in figures.items() if k not in ("cycles", "mac_per_cycle")}
    # Twin measurements of a calibrated board: their calibrated latency beside the model's.
    calibrated = {m.id: view for m in measured if m.latency_ms is not None
                  and (view := twin_view(session, board_of(m.device_class), m.cycle_source,
                                         m.device, m.kernels)) is not None
                  and view.calibration is not None}
    return _html(render(
        "model.html", title=model.name, nav="", model=model, tags=tags, calibrated=calibrated,
        analysis=model.analysis, measurements=measured, table=table, figures=figures,
        has_layers=has_layers, latency_label=latency_title(kinds), mixed_sources=mixed(kinds),
        latency_kinds=list({k.key: k for k in kinds}.values())))


@router.get("/jobs")
def jobs_page(request: Request, session: SessionDep, settings: SettingsDep,
              state: Annotated[str | None, Query(max_length=16)] = None,
              device: Annotated[str | None, Query(max_length=NAME_LENGTH)] = None,
              before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Response:
    """Every job, newest first, 50 a page, filtered by state and device class."""
    if _viewer(request, session, settings) is None:
        return _login_page(request)
    state = state if state in JOB_STATES else None
    device = device or None
    page = queries.jobs_page(session, state=state, device_class=device, before=before)
    params = {k: v for k, v in (("state", state), ("device", device)) if v}
    return _html(render(
        "jobs.html", title="Jobs", nav="jobs", page=page, states=JOB_STATES, state=state,
        device=device, device_classes=queries.known_device_classes(session),
        first_url="/jobs" + (f"?{urlencode(params)}" if params else ""),
        next_url="/jobs?" + urlencode(params | {"before": page.before or ""})))


@router.get("/searches")
def searches_page(request: Request, session: SessionDep, settings: SettingsDep,
                  before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Response:
    """Search runs, newest first, 50 a page: devices, state, epochs, best candidate."""
    if _viewer(request, session, settings) is None:
        return _login_page(request)
    return _html(render("searches.html", title="Searches", nav="searches",
                        page=search_queries.searches_page(session, before=before)))


@router.get("/searches/{run_id}")
def search_page(request: Request, session: SessionDep, settings: SettingsDep,
                run_id: int) -> Response:
    """One search run: its epochs against the budgets, the Pareto front of accuracy vs
    predicted latency, predicted vs measured latency of the verified candidates, and every
    candidate checked against the budgets (a twin's latency labelled cycle-model)."""
    if _viewer(request, session, settings) is None:
        return _login_page(request)
    run = session.get(SearchRun, run_id) if 1 <= run_id <= MAX_ID else None
    if run is None:
        return _not_found(f"There is no search run {run_id}.")
    view = search_queries.run_view(session, run)
    figures: dict[str, dict[str, Any]] = {}
    if view.epochs:
        figures |= epoch_figures(view.epochs, run.devices, run.budgets)
    pareto = pareto_figure(view.candidates, view.epochs, run.devices, run.budgets)
    if pareto["data"]:
        figures["pareto"] = pareto
    n_verified = sum(1 for c in view.candidates if c.verified)
    if any(c.verified and c.measured for c in view.candidates):
        figures["verified"] = verified_figure(view.candidates, run.devices)
    kinds = list({d.kind.key: d.kind for d in view.devices}.values())
    twins = [d.device for d in view.devices if d.kind.key == CYCLE_MODEL.key]
    return _html(render(
        "search.html", title=run.name, nav="searches", view=view, figures=figures,
        n_verified=n_verified, latency_kinds=kinds, mixed_sources=mixed(kinds), twins=twins))


def _safe_next(target: str) -> str:
    """A local path to go back to after signing in (never another site)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _signed_in(request: Request, token: str, next: str) -> Response:
    """Back to ``next`` with ``token`` in this browser's cookie (HttpOnly: no script reads
    it; SameSite=Strict: no other site's page sends it)."""
    response = RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(TOKEN_COOKIE, token, max_age=TOKEN_COOKIE_MAX_AGE, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


def _login_form(next: str, error: str | None = None,
                status_code: int = status.HTTP_200_OK) -> HTMLResponse:
    return _html(render("login.html", title="Sign in", nav="", next=_safe_next(next),
                        error=error), status_code)


@router.get("/login")
def login_link(request: Request,
               code: Annotated[str | None, Query(max_length=200)] = None,
               next: Annotated[str, Query(max_length=2000)] = "/") -> Response:
    """The sign-in form; with ``code`` (a one-time login code, as in the URL ``mcuprof
    demo`` prints) a new browser session, kept in the cookie, without typing a token."""
    if code is None:
        return _login_form(next)
    try:
        with _db(request).transaction() as session:
            row, token = exchange_login_code(session, code)
            logger.info("login code exchanged for browser session %r", row.name)
    except AuthError as e:
        return _login_form(next, error=str(e), status_code=status.HTTP_401_UNAUTHORIZED)
    return _signed_in(request, token, next)


@router.post("/login")
def login(request: Request, session: SessionDep, settings: SettingsDep,
          token: Annotated[str, Form(max_length=1000)],
          next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    """Check a token and keep it in this browser's cookie."""
    try:
        authenticate(session, f"Bearer {token.strip()}")
    except AuthError as e:
        return _login_page(request, error=str(e), status_code=status.HTTP_401_UNAUTHORIZED)
    finally:
        session.rollback()
    return _signed_in(request, token.strip(), next)


@router.get("/static/{name}")
def static_file(request: Request, name: str) -> Response:
    """The stylesheet, the page script and plotly.js (gzip when the browser takes it)."""
    found = asset(name)
    if found is None:
        return Response(f"no static file {name}", status_code=status.HTTP_404_NOT_FOUND,
                        media_type="text/plain")
    headers = {"ETag": found.etag, "Cache-Control": f"public, max-age={STATIC_MAX_AGE}",
               "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(found.gzipped, media_type=found.media_type,
                        headers=headers | {"Content-Encoding": "gzip"})
    return Response(found.body, media_type=found.media_type, headers=headers)
