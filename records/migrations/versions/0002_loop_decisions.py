"""decisions that stick: one review per recommendation, one feedback per (student, module, term),
serialised promotions

Revision ID: 0002_loop
Revises: 0002_harden
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_loop"
down_revision = "0002_harden"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Reviews: keep the first decision of a recommendation (later ones were the race's losers).
    op.execute(
        "DELETE FROM review WHERE id NOT IN (SELECT MIN(id) FROM review GROUP BY recommendation_id)"
    )
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target_term", sa.String(length=32), nullable=True))
        batch_op.drop_index("ix_review_recommendation_id")
        batch_op.create_unique_constraint("uq_review_recommendation_id", ["recommendation_id"])
        batch_op.create_index("ix_review_student_term", ["student_id", "target_term"], unique=False)
    op.execute(
        "UPDATE review SET target_term = (SELECT b.target_term FROM recommendation r "
        "JOIN recommendation_batch b ON b.id = r.batch_id WHERE r.id = review.recommendation_id)"
    )

    # Feedback: the latest action per (student, module, term) stands.
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("target_term", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE feedback SET target_term = COALESCE((SELECT b.target_term FROM recommendation r "
        "JOIN recommendation_batch b ON b.id = r.batch_id WHERE r.id = feedback.recommendation_id), '')"
    )
    op.execute(
        "DELETE FROM feedback WHERE id NOT IN "
        "(SELECT MAX(id) FROM feedback GROUP BY student_id, module_id, target_term)"
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "uq_feedback_student_module_term", ["student_id", "module_id", "target_term"]
        )

    # Promotions: each row names the row it follows; unique, so racing promotions store one row.
    with op.batch_alter_table("promotion", schema=None) as batch_op:
        batch_op.add_column(sa.Column("follows", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE promotion SET follows = COALESCE("
        "(SELECT MAX(p.id) FROM promotion p WHERE p.id < promotion.id), 0)"
    )
    with op.batch_alter_table("promotion", schema=None) as batch_op:
        batch_op.alter_column("follows", existing_type=sa.Integer(), nullable=False)
        batch_op.create_unique_constraint("uq_promotion_follows", ["follows"])


def downgrade() -> None:
    with op.batch_alter_table("promotion", schema=None) as batch_op:
        batch_op.drop_constraint("uq_promotion_follows", type_="unique")
        batch_op.drop_column("follows")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_constraint("uq_feedback_student_module_term", type_="unique")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("target_term")
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.drop_index("ix_review_student_term")
        batch_op.drop_constraint("uq_review_recommendation_id", type_="unique")
        batch_op.create_index("ix_review_recommendation_id", ["recommendation_id"], unique=False)
        batch_op.drop_column("target_term")
