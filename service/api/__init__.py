"""The REST API (``/api/v1``): ``create_app(settings)`` in ``app.py``, one router per resource
in ``routes/``."""
