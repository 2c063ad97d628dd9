"""First schema: lines, model versions, inspections, defects, operator actions

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["line_id"],
            ["lines.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("line_id", "version", name="uq_model_versions_line"),
    )
    op.create_table(
        "inspections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("part_id", sa.String(length=128), nullable=False),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("defect_class", sa.String(length=64), nullable=True),
        sa.Column("defect_score", sa.Float(), nullable=True),
        sa.Column("anomaly_score", sa.Float(), nullable=True),
        sa.Column("class_probs", sa.JSON(), nullable=False),
        sa.Column("fault_reason", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("box_x0", sa.Float(), nullable=True),
        sa.Column("box_y0", sa.Float(), nullable=True),
        sa.Column("box_x1", sa.Float(), nullable=True),
        sa.Column("box_y1", sa.Float(), nullable=True),
        sa.Column("snapshot_path", sa.Text(), nullable=True),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("effective_verdict", sa.String(length=8), nullable=False),
        sa.Column("effective_class", sa.String(length=64), nullable=True),
        sa.Column("last_action", sa.String(length=16), nullable=True),
        sa.Column("last_operator", sa.String(length=128), nullable=True),
        sa.Column("last_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["line_id"],
            ["lines.id"],
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("line_id", "part_id", name="uq_inspections_line_part"),
    )
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.create_index("ix_inspections_line_time", ["line_id", "timestamp"], unique=False)
        batch_op.create_index("ix_inspections_time", ["timestamp"], unique=False)

    op.create_table(
        "defects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inspection_id", sa.Integer(), nullable=False),
        sa.Column("defect_class", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("x0", sa.Float(), nullable=True),
        sa.Column("y0", sa.Float(), nullable=True),
        sa.Column("x1", sa.Float(), nullable=True),
        sa.Column("y1", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["inspection_id"],
            ["inspections.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("defects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_defects_inspection_id"), ["inspection_id"], unique=False
        )

    op.create_table(
        "operator_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inspection_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("new_class", sa.String(length=64), nullable=True),
        sa.Column("previous_class", sa.String(length=64), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inspection_id"],
            ["inspections.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("operator_actions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_operator_actions_inspection_id"), ["inspection_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("operator_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operator_actions_inspection_id"))

    op.drop_table("operator_actions")
    with op.batch_alter_table("defects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_defects_inspection_id"))

    op.drop_table("defects")
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.drop_index("ix_inspections_time")
        batch_op.drop_index("ix_inspections_line_time")

    op.drop_table("inspections")
    op.drop_table("model_versions")
    op.drop_table("lines")
