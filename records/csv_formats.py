"""The CSV set that ``pathways import DIR`` reads and ``pathways generate --out DIR`` writes.

One place names every file and column; data/README.md documents them for people. Every file is
optional (a set may hold only some of them); columns not listed here are ignored with a note.
Files are UTF-8, comma-separated, with a header row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CsvFile:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


# In dependency order: a file may refer only to ids defined by files above it (or already in the database).
CSV_FILES: tuple[CsvFile, ...] = (
    CsvFile("terms.csv", ("code",), ("ordinal", "starts_on")),
    CsvFile("competencies.csv", ("id", "name", "kind"), ("domain", "description")),
    CsvFile("occupations.csv", ("id", "title"), ("description",)),
    CsvFile("occupation_competencies.csv", ("occupation_id", "competency_id", "importance"), ("level",)),
    CsvFile("demand.csv", ("occupation_id", "region", "period", "postings"), ("growth",)),
    CsvFile(
        "modules.csv",
        ("id",),
        (
            "code",
            "title",
            "description",
            "track",
            "department",
            "level",
            "credits",
            "delivery",
            "capacity",
            "pass_grade",
        ),
    ),
    CsvFile("module_competencies.csv", ("module_id", "competency_id", "weight"), ("level",)),
    CsvFile("prerequisites.csv", ("module_id", "group", "requires_module_id"), ("min_grade",)),
    CsvFile("offerings.csv", ("module_id", "term")),
    CsvFile(
        "programs.csv",
        ("id", "name"),
        ("department", "credits_to_graduate", "target_academic", "target_vocational", "target_project"),
    ),
    CsvFile("program_occupations.csv", ("program_id", "occupation_id")),
    CsvFile("program_modules.csv", ("program_id", "module_id")),
    CsvFile("advisors.csv", ("id",), ("name", "department")),
    CsvFile(
        "students.csv",
        ("id",),
        ("program_id", "entry_term", "entry_route", "advisor_id", "max_credits_per_term", "status"),
    ),
    CsvFile("student_attributes.csv", ("student_id", "name", "value")),
    # ``term`` or ``enrolled_on`` (or both): a dated log's terms are derived from its dates.
    CsvFile("enrollments.csv", ("student_id", "module_id"), ("term", "status", "grade", "enrolled_on")),
    CsvFile("goals.csv", ("student_id", "occupation_id"), ("weight", "set_term")),
)

CSV_BY_NAME: dict[str, CsvFile] = {f.name: f for f in CSV_FILES}
