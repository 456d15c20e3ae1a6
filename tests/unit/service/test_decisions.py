"""service.decisions.apply_decisions: the one function every served list goes through (pure)."""

from __future__ import annotations

import datetime as dt

from records.decisions import Decision, review_state
from service.decisions import StudentDecisions, apply_decisions
from service.lists import Item, ModuleSummary


def _item(
    module_id: str, rank: int, recommendation_id: int | None = None, flags: tuple[str, ...] = ()
) -> Item:
    return Item(
        rank=rank,
        module=ModuleSummary(id=module_id, code=module_id.upper(), title=None, track=None, credits=5.0),
        score=1.0 - rank / 10,
        flags=[{"kind": kind, "reason": "why"} for kind in flags],
        recommendation_id=recommendation_id,
    )


def _decision(
    module_id: str,
    action: str,
    recommendation_id: int,
    rank: int,
    kinds: tuple[str, ...] = (),
    replacement: str | None = None,
) -> Decision:
    return Decision(
        review_id=recommendation_id * 10,
        recommendation_id=recommendation_id,
        student_id="s",
        module_id=module_id,
        action=action,
        target_term="2026-1",
        rank=rank,
        flag_kinds=frozenset(kinds),
        replacement_module_id=replacement,
        reviewer_id=1,
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


def _advisor_item(decision: Decision) -> Item:
    assert decision.replacement_module_id is not None
    return _item(decision.replacement_module_id, decision.rank, decision.recommendation_id)


ITEMS = [
    _item("a", 1, 101, ("fail_risk",)),
    _item("b", 2, 102, ("fail_risk",)),
    _item("c", 3, 103, ("fail_risk", "off_target")),
    _item("d", 4, 104),
    _item("e", 5, None, ("fail_risk",)),  # live only: not in the stored batch
]


def test_nothing_decided_marks_pending_only_stored_flagged_items() -> None:
    out = apply_decisions(ITEMS, StudentDecisions("2026-1"), _advisor_item)
    assert [(i.module.id, i.rank, i.review, i.origin, i.feedback) for i in out] == [
        ("a", 1, "pending", "model", None),
        ("b", 2, "pending", "model", None),
        ("c", 3, "pending", "model", None),
        ("d", 4, None, "model", None),
        ("e", 5, None, "model", None),
    ]


def test_decisions_and_feedback_applied() -> None:
    decisions = StudentDecisions(
        "2026-1",
        decisions={
            "a": _decision("a", "approve", 1, 1, ("fail_risk",)),  # an earlier batch's approval
            "b": _decision("b", "replace", 102, 2, ("fail_risk",), replacement="x"),
            "c": _decision("c", "approve", 3, 3, ("fail_risk",)),  # off_target is new: pending again
        },
        feedback={"d": "dismiss", "e": "accept"},
    )
    out = apply_decisions(ITEMS, decisions, _advisor_item)
    assert [(i.module.id, i.rank, i.review, i.origin, i.feedback) for i in out] == [
        ("a", 1, "approved", "model", None),
        ("x", 2, None, "advisor", None),
        ("c", 3, "pending", "model", None),
        ("e", 4, None, "model", "accept"),
    ]
    # Idempotent: a decided list through the function again is unchanged.
    assert apply_decisions(out, decisions, _advisor_item) == out
    # Cut to k after inserting; a replacement the student took or dismissed is not inserted.
    assert [i.module.id for i in apply_decisions(ITEMS, decisions, _advisor_item, k=2)] == ["a", "x"]
    taken = StudentDecisions("2026-1", decisions=decisions.decisions, taken=frozenset({"x"}))
    assert "x" not in [i.module.id for i in apply_decisions(ITEMS, taken, _advisor_item)]
    dismissed = StudentDecisions("2026-1", decisions=decisions.decisions, feedback={"x": "dismiss"})
    assert "x" not in [i.module.id for i in apply_decisions(ITEMS, dismissed, _advisor_item)]


def test_review_state_rule() -> None:
    approve = _decision("a", "approve", 1, 1, ("fail_risk",))
    assert review_state(1, {"fail_risk", "off_target"}, approve) == "approved"  # its own recommendation
    assert review_state(7, {"fail_risk"}, approve) == "approved"
    assert review_state(7, {"fail_risk", "large_change"}, approve) == "pending"
    assert review_state(7, {"fail_risk"}, _decision("a", "reject", 1, 1)) == "rejected"
    assert review_state(7, set(), None) is None
    assert review_state(None, {"fail_risk"}, None) is None


def test_the_advisors_replacement_wins_over_the_models_own_place_for_it() -> None:
    """A list scored live after the replaced module left it may hold the replacement lower down (the
    model's next best): it is listed once, at the replaced rank, as the advisor's."""
    decisions = StudentDecisions(
        "2026-1", decisions={"a": _decision("a", "replace", 101, 1, ("fail_risk",), replacement="d")}
    )
    out = apply_decisions(ITEMS, decisions, _advisor_item)
    assert [(i.module.id, i.rank, i.origin) for i in out] == [
        ("d", 1, "advisor"),
        ("b", 2, "model"),
        ("c", 3, "model"),
        ("e", 4, "model"),
    ]
    assert apply_decisions(out, decisions, _advisor_item) == out
