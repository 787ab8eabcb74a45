"""The dashboard: server-rendered pages (Jinja2) with Plotly figures.

- ``queries``: what each page shows, aggregated in SQL (only the columns needed, tuples
  rather than ORM objects for anything per measurement).
- ``figures``: Plotly figures as plain JSON-able dicts (``{"data": [...], "layout": {...}}``),
  rendered in the browser by the plotly.js the service serves itself (never a CDN).
- ``templates/``, ``static/``: the pages, their stylesheet and the few lines of script that
  hand each figure to Plotly.

The routes are in ``service.api.routes.dashboard``.
"""

from __future__ import annotations
