"""video predictions: transcript, timeline summary and video metadata

``predictions`` gets the transcript (video, or audio with ``transcribe=true``; the text modality
of the request), a per-window timeline summary (labels only) and the video's metadata: duration,
decoded frame count, file size, transcript length. Raw media is never stored.

Revision ID: d7a3f9c1b254
Revises: c5d2e8a41f70
Create Date: 2026-12-02 03:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d7a3f9c1b254"
down_revision: str | None = "c5d2e8a41f70"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("transcript", sa.Text()),
    ("transcript_length", sa.Integer()),
    ("timeline", sa.JSON()),
    ("video_duration_s", sa.Float()),
    ("video_frame_count", sa.Integer()),
    ("video_bytes", sa.Integer()),
)


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("predictions", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35): a batch rebuild would lose the table's AUTOINCREMENT.
    for name, _ in reversed(COLUMNS):
        op.drop_column("predictions", name)
