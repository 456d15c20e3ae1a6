"""Finding occupations by O*NET code or title, as people type them (``pathways occupations``,
``pathways recommend --occupation``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from records.schema import Occupation

LIST_HINT = "list them with `pathways occupations --search TEXT`"


class OccupationLookupError(LookupError):
    """No occupation, or more than one, matches what was typed."""


def find_occupations(session: Session, text: str | None = None, limit: int | None = None) -> list[Occupation]:
    """Occupations whose code or title contains ``text`` (case-insensitive), by code; all without text."""
    query = select(Occupation).order_by(Occupation.id)
    if text:
        pattern = f"%{text.strip().lower()}%"
        query = query.where(
            or_(func.lower(Occupation.id).like(pattern), func.lower(Occupation.title).like(pattern))
        )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def resolve_occupation(session: Session, text: str) -> Occupation:
    """The one occupation ``text`` names: its exact O*NET code or title, else the only one containing it.

    Raises :class:`OccupationLookupError` saying what matched (up to five) and how to list them.
    """
    wanted = text.strip()
    exact = session.get(Occupation, wanted)
    if exact is not None:
        return exact
    by_title = session.scalars(select(Occupation).where(func.lower(Occupation.title) == wanted.lower())).all()
    if len(by_title) == 1:
        return by_title[0]
    matches: Sequence[Occupation] = find_occupations(session, wanted, limit=6)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise OccupationLookupError(f"no occupation has code or title matching {text!r}: {LIST_HINT}")
    shown = "; ".join(f"{row.id} {row.title}" for row in matches[:5])
    more = ", ..." if len(matches) > 5 else ""
    raise OccupationLookupError(
        f"{text!r} matches several occupations ({shown}{more}): give the code; {LIST_HINT}"
    )
