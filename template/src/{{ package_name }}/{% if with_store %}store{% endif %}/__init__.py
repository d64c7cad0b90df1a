"""The prediction store: every prediction the service serves, kept in a database for monitoring.

- schema.py: the `predictions` table, as SQLAlchemy models (what the migrations build)
- database.py: where the database is (DATABASE_URL), its engine, and `migrate()`
- records.py: `PredictionStore`, a bounded in-memory buffer that a background thread writes to
  the database in batches, off the request path
- migrations/: Alembic's schema migrations, applied by `make migrate` and on start-up
"""
