"""The service's database: typed models (``models``), engines and sessions (``engine``) and
Alembic migrations driven from Python (``migrate``)."""
