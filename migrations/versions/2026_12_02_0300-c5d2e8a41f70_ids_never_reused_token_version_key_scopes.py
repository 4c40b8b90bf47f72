"""ids never reused, token version, API key scopes

SQLite reuses the largest rowid after a delete unless the table was created with
AUTOINCREMENT, so a deleted user's id (and with it their still-valid tokens) could pass to the
next account. SQLite cannot add AUTOINCREMENT in place: users, api_keys and predictions are
rebuilt (batch mode) with it; foreign keys must be off while that runs, or dropping the old
``users`` would cascade-delete every child row (``db._run_alembic`` and the alembic CLI run
with them off; this migration refuses to run otherwise).

MariaDB >= 10.2.4 and MySQL >= 8.0 persist InnoDB's AUTO_INCREMENT counter, so ids are not
reused there after deletes or restarts: nothing to change for them.

``users.token_version`` is carried by every access token (claim ``ver``); "log out everywhere"
increments it. ``api_keys.scopes`` (space-separated) limits what a key may do; existing keys
keep what they could do before except managing keys (predict, read and delete history).

Revision ID: c5d2e8a41f70
Revises: 8b4e6d0f2a13
Create Date: 2026-12-02 03:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c5d2e8a41f70"
down_revision: str | None = "8b4e6d0f2a13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_SCOPES = "predict history:read history:write"
REBUILT = ("users", "api_keys", "predictions")


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _refuse_foreign_keys_on() -> None:
    if op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "SQLite foreign keys are ON: rebuilding 'users' would cascade-delete its rows. "
            "Run this migration with PRAGMA foreign_keys=OFF (alembic upgrade head does)."
        )


def _rebuild_sqlite(autoincrement: bool) -> None:
    _refuse_foreign_keys_on()
    for table in REBUILT:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("token_version", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.String(length=100), nullable=False, server_default=DEFAULT_SCOPES))
    if _is_sqlite():
        _rebuild_sqlite(autoincrement=True)


def downgrade() -> None:
    if _is_sqlite():
        _rebuild_sqlite(autoincrement=False)
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scopes")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_version")
