"""A small hand-written institution (every table) whose features can be worked out by hand.

Terms 2024-1 .. 2025-2 (ordinals 1-4); 2025-2 is the current term (in-progress enrollments), so the
newest closed term is 2025-1. Student S4 enters in 2025-2; goal S1→O2 and demand for 2026 are later too.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

CUTOFF = "2025-1"


def small_tables() -> dict[str, pd.DataFrame]:
    """Every record table as a DataFrame with the database's column names (term references as codes)."""
    d = dt.date
    return {
        "terms": pd.DataFrame(
            {
                "code": ["2024-1", "2024-2", "2025-1", "2025-2"],
                "ordinal": [1, 2, 3, 4],
                "starts_on": [d(2024, 2, 1), d(2024, 9, 1), d(2025, 2, 1), d(2025, 9, 1)],
            }
        ),
        "competencies": pd.DataFrame(
            {
                "id": ["c_sql", "c_team", "c_viz", "c_weld"],
                "name": ["SQL", "Teamwork", "Data visualisation", "Welding"],
                "kind": ["skill", "skill", "skill", "skill"],
                "domain": ["data", "work", "data", "trade"],
                "description": [
                    "querying relational databases with SQL",
                    "collaboration in project teams with industry",
                    "charts plots and dashboards that show data",
                    "joining metal by arc welding",
                ],
            }
        ),
        "modules": pd.DataFrame(
            {
                "id": ["M1", "M2", "M3", "M4", "M5"],
                "code": ["DB101", "VIZ201", "WLD101", "PRJ301", "DB301"],
                "title": [
                    "Databases",
                    "Data visualisation",
                    "Welding practice",
                    "Industry project",
                    "Advanced SQL",
                ],
                "description": [
                    "Relational databases and SQL queries",
                    "Charts, dashboards and plots of data",
                    "Arc welding of metal in the workshop",
                    "A team project with an industry partner",
                    "Advanced SQL queries and relational database tuning",
                ],
                "track": ["academic", "academic", "vocational", "project", "academic"],
                "department": ["CS", "CS", "ENG", "CS", "CS"],
                "level": [1, 2, 1, 3, 3],
                "credits": [5.0, 5.0, 10.0, 10.0, 5.0],
                "delivery": ["offline"] * 5,
                "capacity": [None, None, 2, None, None],
                "pass_grade": [60.0] * 5,
            }
        ),
        "module_competencies": pd.DataFrame(
            {
                "module_id": ["M1", "M2", "M2", "M3", "M4"],
                "competency_id": ["c_sql", "c_viz", "c_sql", "c_weld", "c_team"],
                "weight": [1.0, 0.8, 0.2, 1.0, 0.6],
                "level": [3, 3, 2, 4, 3],
            }
        ),
        "prerequisites": pd.DataFrame(
            {"module_id": ["M5"], "group_no": [1], "requires_module_id": ["M1"], "min_grade": [70.0]}
        ),
        "offerings": pd.DataFrame(
            {
                "module_id": ["M3", "M3", "M4", "M4"],
                "term_code": ["2024-1", "2025-1", "2024-2", "2025-2"],
            }
        ),
        "programs": pd.DataFrame(
            {
                "id": ["P1", "P2"],
                "name": ["Data science", "Welding technology"],
                "department": ["CS", "ENG"],
                "credits_to_graduate": [180.0, 120.0],
                "target_academic": [0.6, 0.2],
                "target_vocational": [0.1, 0.6],
                "target_project": [0.3, 0.2],
            }
        ),
        "program_occupations": pd.DataFrame({"program_id": ["P1", "P2"], "occupation_id": ["O1", "O2"]}),
        "program_modules": pd.DataFrame({"program_id": ["P1", "P2"], "module_id": ["M1", "M3"]}),
        "occupations": pd.DataFrame(
            {"id": ["O1", "O2"], "title": ["Data analyst", "Welder"], "description": ["", ""]}
        ),
        "occupation_competencies": pd.DataFrame(
            {
                "occupation_id": ["O1", "O1", "O2", "O2"],
                "competency_id": ["c_sql", "c_viz", "c_weld", "c_team"],
                "importance": [1.0, 0.5, 1.0, 0.5],
                "level": [3.5, 7.0, 7.0, 3.5],
            }
        ),
        "demand": pd.DataFrame(
            {
                "occupation_id": ["O1", "O2", "O1"],
                "region": ["NZ", "NZ", "NZ"],
                "period": ["2024", "2024", "2026"],
                "period_start": [d(2024, 1, 1), d(2024, 1, 1), d(2026, 1, 1)],
                "postings": [100.0, 100.0, 900.0],
                "growth": [0.2, 0.0, 0.5],
            }
        ),
        "advisors": pd.DataFrame({"id": ["A1"], "name": ["Ada"], "department": ["CS"]}),
        "students": pd.DataFrame(
            {
                "id": ["S1", "S2", "S3", "S4"],
                "program_id": ["P1", "P2", None, "P1"],
                "entry_term": ["2024-1", "2024-1", "2025-1", "2025-2"],
                "entry_route": ["general", "vocational", "transfer", "general"],
                "advisor_id": ["A1", "A1", None, "A1"],
                "max_credits_per_term": [30.0, 30.0, None, 30.0],
                "status": ["active"] * 4,
            }
        ),
        "student_attributes": pd.DataFrame(
            {
                "student_id": ["S1", "S4"],
                "name": ["first_generation", "first_generation"],
                "value": ["yes", "no"],
            }
        ),
        "enrollments": pd.DataFrame(
            {
                "student_id": ["S1", "S1", "S1", "S1", "S2", "S2", "S2", "S3", "S1", "S4", "S2"],
                "module_id": ["M1", "M2", "M4", "M5", "M3", "M1", "M4", "M1", "M3", "M1", "M5"],
                "term_code": [
                    "2024-1",
                    "2024-2",
                    "2024-2",
                    "2025-1",
                    "2024-1",
                    "2024-2",
                    "2025-1",
                    "2025-1",
                    "2025-2",
                    "2025-2",
                    "2025-2",
                ],
                "status": [
                    "completed",
                    "completed",
                    "failed",
                    "completed",
                    "completed",
                    "withdrawn",
                    "completed",
                    "failed",
                    "in_progress",
                    "in_progress",
                    "in_progress",
                ],
                "grade": [90.0, 60.0, 40.0, 75.0, 70.0, None, None, 30.0, None, None, None],
            }
        ),
        "goals": pd.DataFrame(
            {
                "student_id": ["S1", "S1"],
                "occupation_id": ["O1", "O2"],
                "weight": [1.0, 1.0],
                "set_term": [None, "2025-2"],
            }
        ),
    }
