"""Rendering: the Jinja2 environment with the dashboard's filters, and the static assets
(the stylesheet, the page script, and plotly.js from the ``plotly`` Python package, which
ships it: the dashboard never loads anything from a CDN).
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import plotly
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from service.dashboard.figures import figure_json

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
# Versioned URL: the file never changes under it, so browsers may cache it for good.
PLOTLY_URL = f"/static/plotly-{plotly.__version__}.min.js"
STATIC_FILES = {"dashboard.css": "text/css; charset=utf-8",
                "dashboard.js": "text/javascript; charset=utf-8"}
GZIP_LEVEL = 6


@dataclass(frozen=True)
class Asset:
    """A static file in memory, with its gzip form and an ETag."""

    body: bytes
    gzipped: bytes
    media_type: str
    etag: str


_assets: dict[str, Asset] = {}
_assets_lock = threading.Lock()


def _load(path: Path, media_type: str) -> Asset:
    body = path.read_bytes()
    return Asset(body=body, gzipped=gzip.compress(body, GZIP_LEVEL), media_type=media_type,
                 etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def asset(name: str) -> Asset | None:
    """A static asset by URL name (``dashboard.css``, ``plotly-<version>.min.js``), loaded
    and compressed once per process; None when there is no such asset."""
    with _assets_lock:
        if name not in _assets:
            if name == PLOTLY_URL.rsplit("/", 1)[1]:
                _assets[name] = _load(PLOTLY_JS, "text/javascript; charset=utf-8")
            elif name in STATIC_FILES:
                _assets[name] = _load(STATIC / name, STATIC_FILES[name])
            else:
                return None
        return _assets[name]


def static_url(name: str) -> str:
    """The URL of a static file, with a digest of its content so a change is never cached
    stale."""
    found = asset(name)
    return f"/static/{name}?v={found.etag.strip(chr(34))[:12]}" if found else f"/static/{name}"


# --------------------------------------------------------------------------------------------
# Filters


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.1f}" if value >= 100 else f"{value:.3f}"


def fmt_kib(value: int | float | None) -> str:
    return "–" if value is None else f"{value / 1024:,.1f} KiB"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def fmt_num(value: int | float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.3g}"


def fmt_age(when: datetime | None) -> str:
    if when is None:
        return "never"
    stamp = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    seconds = max(0, int((datetime.now(timezone.utc) - stamp).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def fmt_time(when: datetime | None) -> str:
    return "–" if when is None else when.strftime("%Y-%m-%d %H:%M:%S UTC")


def short(text: str | None, width: int = 80) -> str:
    if not text:
        return ""
    line = " ".join(text[: width * 4].split())  # a stored detail may be huge: look at its head
    return line if len(line) <= width else line[: width - 1] + "…"


def figure(fig: dict[str, Any]) -> Markup:
    """A figure as JSON for a ``<script type="application/json">`` element."""
    return Markup(figure_json(fig))


def path_segment(value: str) -> str:
    """``value`` quoted for one URL path segment (device classes have ``:``)."""
    return quote(value, safe=":")


@cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters.update(ms=fmt_ms, kib=fmt_kib, pct=fmt_pct, num=fmt_num, age=fmt_age,
                       time=fmt_time, short=short, figure=figure, seg=path_segment)
    env.globals.update(static=static_url, plotly_url=PLOTLY_URL)
    return env


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` (``figures``: id → figure, drawn by the page script)."""
    context.setdefault("figures", {})
    return environment().get_template(template).render(**context)
