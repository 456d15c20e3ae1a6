"""The service's pure rules: who may see which student, and how fail probability maps to risk."""

from __future__ import annotations

import pytest

from records.schema import Student
from service.auth import Principal, can_see_student, require_role
from service.errors import Forbidden
from service.handlers import risk_level

STUDENT = Principal(user_id=1, name="ana", role="student", student_id="S1")
ADVISOR = Principal(user_id=2, name="vega", role="advisor", advisor_id="A1")
ADMIN = Principal(user_id=3, name="root", role="admin")
ORPHAN_ADVISOR = Principal(user_id=4, name="nobody", role="advisor", advisor_id=None)


@pytest.mark.parametrize(
    ("principal", "student", "visible"),
    [
        (STUDENT, Student(id="S1", advisor_id="A2"), True),
        (STUDENT, Student(id="S2", advisor_id="A1"), False),
        (ADVISOR, Student(id="S2", advisor_id="A1"), True),
        (ADVISOR, Student(id="S3", advisor_id="A2"), False),
        (ADVISOR, Student(id="S4", advisor_id=None), False),
        (ORPHAN_ADVISOR, Student(id="S4", advisor_id=None), False),
        (ADMIN, Student(id="S3", advisor_id="A2"), True),
    ],
)
def test_visibility(principal: Principal, student: Student, visible: bool) -> None:
    assert can_see_student(principal, student) is visible


def test_require_role_names_the_missing_role() -> None:
    require_role(ADMIN, "admin")
    with pytest.raises(Forbidden, match="the student role may not do this \\(needs advisor or admin\\)"):
        require_role(STUDENT, "advisor", "admin")


@pytest.mark.parametrize(
    ("probability", "level"),
    [
        (None, "unknown"),
        (0.0, "low"),
        (0.17, "low"),
        (0.175, "medium"),
        (0.349, "medium"),
        (0.35, "high"),
        (1.0, "high"),
    ],
)
def test_risk_levels_follow_the_flag_threshold(probability: float | None, level: str) -> None:
    assert risk_level(probability, threshold=0.35) == level
