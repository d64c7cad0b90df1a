"""The `predictions` table. Change it here, then generate a migration for the change.

README, "Prediction store", shows how: `alembic revision --autogenerate -m "..."`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Double, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint and index names follow one convention, so that migrations can name what they drop
# or alter on every database (https://alembic.sqlalchemy.org/en/latest/naming.html).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Prediction(Base):
    """One answered request to /predict or /predict_proba: what came in, what went out."""

    __tablename__ = "predictions"

    # 64-bit: at a thousand predictions a second, 32 bits run out within a month. SQLite only
    # numbers its rows by itself for a column declared exactly INTEGER PRIMARY KEY (which is
    # 64-bit there anyway).
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # The client's X-Request-ID, or one the service made up; not unique (a client may retry).
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    # When the answer was made, in UTC.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # The SHA-256 of the model artifact that answered (GET /model shows the current one).
    model_sha256: Mapped[str] = mapped_column(String(64))
    # The model version that answered (GET /model names the current one); null in the rows
    # stored before versions existed.
    model_version: Mapped[str | None] = mapped_column(String(64))
    # The route that answered: "/predict" or "/predict_proba".
    endpoint: Mapped[str] = mapped_column(String(64))
    # The rows, as arrays of numbers in the model's feature order (GET /model lists them).
    inputs: Mapped[list[list[float]]] = mapped_column(JSON)
    # The response's results, one per row: labels or values, or {class: probability} objects.
    outputs: Mapped[list[Any]] = mapped_column(JSON)
    # The time the service took, from the request's arrival to the response, in milliseconds.
    latency_ms: Mapped[float] = mapped_column(Double)
