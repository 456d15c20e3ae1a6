"""A seeded, deterministic, vectorised generator of a realistic university (the synthetic institution).

The institution integrates academic ("general") and vocational education with industry projects:
faculties run programs with track targets, modules in all three tracks build competencies named like
O*NET elements and real technologies, occupations demand those competencies, and students are
simulated term by term (choices under prerequisites, offerings, capacity and credit caps; grades from
latent ability; fails, retakes, withdrawals, drop-outs and graduation).

Public API::

    SIZES: dict[str, SizeSpec]                                   # tiny, small, medium, large
    generate(size="small", seed=7) -> dict[str, pd.DataFrame]    # one frame per CSV file
    write_csv_set(tables, out_dir) -> dict[str, int]             # rows per file written
    simulate(size="small", seed=7) -> Institution                # frames plus the latent truth (tests)

Every frame has exactly the columns of its :class:`records.csv_formats.CsvFile`, in that order. Ids are
strings; numbers are int64 or float64 (``NaN`` where a value is missing, e.g. the grade of a withdrawal);
optional strings that are missing (a goal's ``set_term``, a prerequisite's ``min_grade``) are ``None``/NaN.
The story and the signals the data carries are told in data/README.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from records.csv_formats import CSV_BY_NAME, CSV_FILES
from records.schema import DEFAULT_PASS_GRADE, TRACKS

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
"""A progress callback: (what is happening, fraction done in 0-1)."""


@dataclass(frozen=True)
class SizeSpec:
    """How big an institution is: students in total, modules, programs and years of intake."""

    students: int
    modules: int
    programs: int
    years: int
    shared_share: float  # share of a department's modules in its pool shared by all its programs


SIZES: dict[str, SizeSpec] = {
    "tiny": SizeSpec(students=200, modules=60, programs=3, years=8, shared_share=0.75),
    "small": SizeSpec(students=3_000, modules=320, programs=10, years=9, shared_share=0.45),
    "medium": SizeSpec(students=30_000, modules=1_000, programs=19, years=9, shared_share=0.4),
    "large": SizeSpec(students=200_000, modules=3_000, programs=38, years=11, shared_share=0.3),
}

LAST_SIMULATED_YEAR = 2025  # the newest closed term is f"{LAST_SIMULATED_YEAR}-2"
FUTURE_TERMS = 2  # terms after the last simulated one that get offerings (the recommendation target)
REGIONS = ("Capital Region", "North", "South", "East", "West")
CHUNK_CELLS = 2_500_000  # student × candidate cells scored at once (bounds memory)
MAX_STAGE = 12  # stages (terms since entry) tracked separately; later ones share the last row
CANDIDATES_PER_STUDENT = 12  # best-scoring eligible modules a student considers each term

# ---------------------------------------------------------------------------------------------
# Vocabulary: competency domains, occupations, departments, program templates
# ---------------------------------------------------------------------------------------------

(MATH, SOFT, DATA, NET, ELEC, MECH, BUILD, HEALTH, LIFE, BUS, FIN, MKT, DESIGN, COG, PRO) = range(15)

# (domain name, ((competency name, kind), ...)); ten competencies per domain, 150 in all.
DOMAINS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Mathematics and Statistics",
        (
            ("Mathematics", "knowledge"),
            ("Statistics", "knowledge"),
            ("Linear Algebra", "knowledge"),
            ("Calculus", "knowledge"),
            ("Probability", "knowledge"),
            ("Mathematical Reasoning", "ability"),
            ("Number Facility", "ability"),
            ("Quantitative Analysis", "skill"),
            ("Operations Research", "knowledge"),
            ("R", "technology"),
        ),
    ),
    (
        "Software Development",
        (
            ("Programming", "skill"),
            ("Python", "technology"),
            ("Java", "technology"),
            ("JavaScript", "technology"),
            ("Git", "technology"),
            ("Software Testing", "skill"),
            ("Algorithms and Data Structures", "knowledge"),
            ("Object-Oriented Design", "knowledge"),
            ("Web Development", "skill"),
            ("Linux", "technology"),
        ),
    ),
    (
        "Data and Analytics",
        (
            ("SQL", "technology"),
            ("Data Visualisation", "skill"),
            ("Machine Learning", "knowledge"),
            ("Data Modelling", "skill"),
            ("Databases", "knowledge"),
            ("Data Cleaning", "skill"),
            ("Tableau", "technology"),
            ("Apache Spark", "technology"),
            ("Microsoft Excel", "technology"),
            ("Data Ethics", "value"),
        ),
    ),
    (
        "Networks and Security",
        (
            ("Computer Networks", "knowledge"),
            ("Cybersecurity", "knowledge"),
            ("Cloud Computing", "knowledge"),
            ("Network Configuration", "skill"),
            ("Systems Administration", "skill"),
            ("AWS", "technology"),
            ("Docker", "technology"),
            ("Incident Response", "skill"),
            ("Cryptography", "knowledge"),
            ("Cisco IOS", "technology"),
        ),
    ),
    (
        "Electrical and Electronics",
        (
            ("Electrical Systems", "knowledge"),
            ("Electronics", "knowledge"),
            ("Circuit Analysis", "skill"),
            ("PLC Programming", "skill"),
            ("Electrical Installation", "skill"),
            ("Control Systems", "knowledge"),
            ("Power Engineering", "knowledge"),
            ("Embedded Systems", "knowledge"),
            ("MATLAB", "technology"),
            ("Troubleshooting", "skill"),
        ),
    ),
    (
        "Mechanical and Manufacturing",
        (
            ("Mechanics", "knowledge"),
            ("Thermodynamics", "knowledge"),
            ("Welding", "skill"),
            ("Machining", "skill"),
            ("CNC Programming", "technology"),
            ("Materials Science", "knowledge"),
            ("Manufacturing Processes", "knowledge"),
            ("Equipment Maintenance", "skill"),
            ("Manual Dexterity", "ability"),
            ("SolidWorks", "technology"),
        ),
    ),
    (
        "Construction and Built Environment",
        (
            ("Building and Construction", "knowledge"),
            ("AutoCAD", "technology"),
            ("Structural Analysis", "knowledge"),
            ("Surveying", "skill"),
            ("Revit", "technology"),
            ("Construction Site Safety", "knowledge"),
            ("Estimating and Costing", "skill"),
            ("Carpentry", "skill"),
            ("Plumbing Systems", "knowledge"),
            ("Spatial Orientation", "ability"),
        ),
    ),
    (
        "Health and Care",
        (
            ("Patient Care", "skill"),
            ("Anatomy and Physiology", "knowledge"),
            ("Clinical Assessment", "skill"),
            ("Pharmacology", "knowledge"),
            ("Infection Control", "skill"),
            ("First Aid", "skill"),
            ("Electronic Health Records", "technology"),
            ("Mental Health Support", "skill"),
            ("Therapy and Counseling", "knowledge"),
            ("Compassionate Care", "value"),
        ),
    ),
    (
        "Life Sciences",
        (
            ("Biology", "knowledge"),
            ("Chemistry", "knowledge"),
            ("Laboratory Techniques", "skill"),
            ("Microbiology", "knowledge"),
            ("Biochemistry", "knowledge"),
            ("Nutrition", "knowledge"),
            ("Research Methods", "knowledge"),
            ("Scientific Writing", "skill"),
            ("Laboratory Information Systems", "technology"),
            ("Biostatistics", "knowledge"),
        ),
    ),
    (
        "Business and Management",
        (
            ("Administration and Management", "knowledge"),
            ("Project Management", "skill"),
            ("Entrepreneurship", "knowledge"),
            ("Operations Management", "knowledge"),
            ("Human Resources", "knowledge"),
            ("Supply Chain Management", "knowledge"),
            ("Management of Personnel Resources", "skill"),
            ("Negotiation", "skill"),
            ("Customer and Personal Service", "knowledge"),
            ("Jira", "technology"),
        ),
    ),
    (
        "Finance and Accounting",
        (
            ("Accounting", "knowledge"),
            ("Economics", "knowledge"),
            ("Financial Analysis", "skill"),
            ("Management of Financial Resources", "skill"),
            ("Taxation", "knowledge"),
            ("Auditing", "skill"),
            ("Business Law", "knowledge"),
            ("Risk Management", "knowledge"),
            ("SAP ERP", "technology"),
            ("Bookkeeping", "skill"),
        ),
    ),
    (
        "Marketing and Communication",
        (
            ("Marketing", "knowledge"),
            ("Digital Marketing", "skill"),
            ("Market Research", "skill"),
            ("Brand Management", "knowledge"),
            ("Social Media Management", "skill"),
            ("Copywriting", "skill"),
            ("Persuasion", "skill"),
            ("Google Analytics", "technology"),
            ("English Language", "knowledge"),
            ("Writing", "skill"),
        ),
    ),
    (
        "Design and Media",
        (
            ("Graphic Design", "skill"),
            ("User Experience Design", "skill"),
            ("Typography", "knowledge"),
            ("Adobe Photoshop", "technology"),
            ("Figma", "technology"),
            ("Video Production", "skill"),
            ("Fine Arts", "knowledge"),
            ("3D Modelling", "skill"),
            ("Visualization", "ability"),
            ("Photography", "skill"),
        ),
    ),
    (
        "Cognitive and Interpersonal Skills",
        (
            ("Critical Thinking", "skill"),
            ("Complex Problem Solving", "skill"),
            ("Active Learning", "skill"),
            ("Active Listening", "skill"),
            ("Speaking", "skill"),
            ("Reading Comprehension", "skill"),
            ("Coordination", "skill"),
            ("Judgment and Decision Making", "skill"),
            ("Social Perceptiveness", "skill"),
            ("Time Management", "skill"),
        ),
    ),
    (
        "Professional Practice",
        (
            ("Oral Expression", "ability"),
            ("Written Expression", "ability"),
            ("Deductive Reasoning", "ability"),
            ("Inductive Reasoning", "ability"),
            ("Originality", "ability"),
            ("Teamwork", "value"),
            ("Professional Ethics", "value"),
            ("Sustainability", "value"),
            ("Safety Culture", "value"),
            ("Integrity", "value"),
        ),
    ),
)
GENERAL_DOMAINS = (COG, PRO)

# (O*NET-SOC code, title, competency domains (first is primary), yearly growth of postings)
OCCUPATIONS: tuple[tuple[str, str, tuple[int, ...], float], ...] = (
    ("15-1252.00", "Software Developers", (SOFT, DATA, MATH), 0.09),
    ("15-2051.00", "Data Scientists", (DATA, MATH, SOFT), 0.13),
    ("15-1211.00", "Computer Systems Analysts", (DATA, BUS, SOFT), 0.05),
    ("15-1244.00", "Network and Computer Systems Administrators", (NET, SOFT), 0.02),
    ("15-1212.00", "Information Security Analysts", (NET, SOFT, DATA), 0.12),
    ("15-1254.00", "Web Developers", (SOFT, DESIGN), 0.06),
    ("15-1232.00", "Computer User Support Specialists", (NET, BUS), 0.01),
    ("15-1253.00", "Software Quality Assurance Analysts and Testers", (SOFT, DATA), 0.07),
    ("11-3021.00", "Computer and Information Systems Managers", (BUS, NET, SOFT), 0.06),
    ("17-2141.00", "Mechanical Engineers", (MECH, MATH, ELEC), 0.03),
    ("17-2071.00", "Electrical Engineers", (ELEC, MATH), 0.04),
    ("47-2111.00", "Electricians", (ELEC, BUILD), 0.05),
    ("51-4121.00", "Welders, Cutters, Solderers, and Brazers", (MECH,), 0.01),
    ("17-3027.00", "Mechanical Engineering Technologists and Technicians", (MECH, ELEC), 0.02),
    ("17-3023.00", "Electrical and Electronic Engineering Technologists and Technicians", (ELEC, MECH), 0.02),
    ("49-9041.00", "Industrial Machinery Mechanics", (MECH, ELEC), 0.04),
    ("51-4011.00", "Computer Numerically Controlled Tool Operators", (MECH, SOFT), -0.01),
    ("17-2051.00", "Civil Engineers", (BUILD, MATH), 0.04),
    ("11-9021.00", "Construction Managers", (BUILD, BUS, FIN), 0.05),
    ("17-3011.00", "Architectural and Civil Drafters", (BUILD, DESIGN), -0.02),
    ("47-2031.00", "Carpenters", (BUILD, MECH), 0.01),
    ("29-1141.00", "Registered Nurses", (HEALTH, LIFE), 0.06),
    ("31-9092.00", "Medical Assistants", (HEALTH, BUS), 0.08),
    ("29-2052.00", "Pharmacy Technicians", (HEALTH, LIFE), 0.03),
    ("29-1123.00", "Physical Therapists", (HEALTH, LIFE), 0.07),
    ("29-2011.00", "Medical and Clinical Laboratory Technologists", (LIFE, HEALTH, DATA), 0.04),
    ("31-1122.00", "Personal Care Aides", (HEALTH,), 0.09),
    ("21-1014.00", "Mental Health Counselors", (HEALTH, COG), 0.10),
    ("29-9021.00", "Health Information Technologists and Medical Registrars", (HEALTH, DATA), 0.08),
    ("13-2011.00", "Accountants and Auditors", (FIN, BUS), 0.02),
    ("13-1111.00", "Management Analysts", (BUS, DATA, FIN), 0.05),
    ("13-1082.00", "Project Management Specialists", (BUS, PRO), 0.06),
    ("13-1161.00", "Market Research Analysts and Marketing Specialists", (MKT, DATA), 0.08),
    ("13-2051.00", "Financial and Investment Analysts", (FIN, MATH, DATA), 0.04),
    ("43-3031.00", "Bookkeeping, Accounting, and Auditing Clerks", (FIN,), -0.04),
    ("11-2021.00", "Marketing Managers", (MKT, BUS), 0.04),
    ("13-1071.00", "Human Resources Specialists", (BUS, COG), 0.03),
    ("13-1081.00", "Logisticians", (BUS, DATA), 0.05),
    ("27-1024.00", "Graphic Designers", (DESIGN, MKT), 0.00),
    ("15-1255.00", "Web and Digital Interface Designers", (DESIGN, SOFT), 0.07),
    ("27-1021.00", "Commercial and Industrial Designers", (DESIGN, MECH), 0.01),
    ("27-4032.00", "Film and Video Editors", (DESIGN, MKT), 0.04),
    ("27-1025.00", "Interior Designers", (DESIGN, BUILD), 0.01),
    ("27-3043.00", "Writers and Authors", (MKT, DESIGN), 0.02),
)

# department -> (code prefix, competency domains its modules build, first is the most common)
DEPARTMENTS: dict[str, tuple[str, tuple[int, ...]]] = {
    "Computing": ("CMP", (SOFT, DATA, NET, MATH)),
    "Engineering": ("ENG", (ELEC, MECH, MATH)),
    "Built Environment": ("BEN", (BUILD, MATH, BUS)),
    "Health Sciences": ("HSC", (HEALTH, LIFE)),
    "Business": ("BUS", (BUS, FIN, MKT)),
    "Design and Media": ("DES", (DESIGN, MKT)),
}
GENERAL_DEPARTMENT = ("General Studies", "GEN", (COG, PRO, MATH, MKT))

ORIENTATIONS = {  # track targets (academic, vocational, project) and credits to graduate
    "academic": ((0.55, 0.25, 0.20), 240),
    "balanced": ((0.40, 0.40, 0.20), 240),
    "vocational": ((0.25, 0.55, 0.20), 180),
}

# (name, department, orientation, focus domains, aligned occupations)
PROGRAM_TEMPLATES: tuple[tuple[str, str, str, tuple[int, ...], tuple[str, ...]], ...] = (
    (
        "BSc Computer Science",
        "Computing",
        "academic",
        (SOFT, MATH, DATA),
        ("15-1252.00", "15-2051.00", "15-1211.00", "15-1253.00"),
    ),
    (
        "Software Development (Applied)",
        "Computing",
        "vocational",
        (SOFT, NET, DATA),
        ("15-1252.00", "15-1254.00", "15-1253.00", "15-1232.00"),
    ),
    (
        "BSc Data Science",
        "Computing",
        "academic",
        (DATA, MATH, SOFT),
        ("15-2051.00", "15-1211.00", "13-1111.00"),
    ),
    (
        "BSc Nursing",
        "Health Sciences",
        "balanced",
        (HEALTH, LIFE),
        ("29-1141.00", "31-9092.00", "21-1014.00"),
    ),
    (
        "BEng Mechanical Engineering",
        "Engineering",
        "academic",
        (MECH, MATH, ELEC),
        ("17-2141.00", "17-3027.00"),
    ),
    (
        "Electrical Installation and Automation (Applied)",
        "Engineering",
        "vocational",
        (ELEC, MECH),
        ("47-2111.00", "17-3023.00", "49-9041.00"),
    ),
    (
        "Health Care Practice (Applied)",
        "Health Sciences",
        "vocational",
        (HEALTH, BUS),
        ("31-9092.00", "31-1122.00", "29-2052.00", "29-9021.00"),
    ),
    (
        "BA Business Management",
        "Business",
        "academic",
        (BUS, MKT, FIN),
        ("13-1111.00", "13-1082.00", "13-1071.00", "13-1081.00"),
    ),
    (
        "BA Accounting and Finance",
        "Business",
        "academic",
        (FIN, MATH, BUS),
        ("13-2011.00", "13-2051.00", "43-3031.00"),
    ),
    (
        "BA Graphic and Interaction Design",
        "Design and Media",
        "balanced",
        (DESIGN, SOFT, MKT),
        ("27-1024.00", "15-1255.00", "15-1254.00"),
    ),
    (
        "Networks and Cyber Security (Applied)",
        "Computing",
        "vocational",
        (NET, SOFT),
        ("15-1244.00", "15-1212.00", "15-1232.00", "11-3021.00"),
    ),
    (
        "BEng Electrical and Electronic Engineering",
        "Engineering",
        "academic",
        (ELEC, MATH, SOFT),
        ("17-2071.00", "17-3023.00"),
    ),
    (
        "Advanced Manufacturing and Welding (Applied)",
        "Engineering",
        "vocational",
        (MECH, ELEC),
        ("51-4121.00", "51-4011.00", "49-9041.00", "17-3027.00"),
    ),
    ("BEng Civil Engineering", "Built Environment", "academic", (BUILD, MATH), ("17-2051.00", "11-9021.00")),
    (
        "Construction Management (Applied)",
        "Built Environment",
        "vocational",
        (BUILD, BUS, FIN),
        ("11-9021.00", "47-2031.00", "17-3011.00"),
    ),
    (
        "BSc Biomedical Science",
        "Health Sciences",
        "academic",
        (LIFE, HEALTH, DATA),
        ("29-2011.00", "29-2052.00", "29-1123.00"),
    ),
    (
        "Digital Marketing (Applied)",
        "Business",
        "vocational",
        (MKT, DESIGN, DATA),
        ("13-1161.00", "11-2021.00", "27-3043.00"),
    ),
    (
        "BA Product Design",
        "Design and Media",
        "academic",
        (DESIGN, MECH),
        ("27-1021.00", "27-1025.00", "17-3011.00"),
    ),
    (
        "Digital Media Production (Applied)",
        "Design and Media",
        "vocational",
        (DESIGN, MKT),
        ("27-4032.00", "27-3043.00", "27-1024.00"),
    ),
)
CAMPUSES = ("City Campus", "Riverside Campus", "Harbour Campus")

FIRST_NAMES = (
    "Ana", "Ben", "Chloe", "Daniel", "Elif", "Farah", "George", "Hana", "Ivan", "Jia", "Kofi", "Lena",
    "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Samuel", "Tomoko", "Uma", "Victor", "Wen", "Yusuf",
)  # fmt: skip
LAST_NAMES = (
    "Adeyemi", "Becker", "Chen", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jansen", "Kim",
    "Lopez", "Moreau", "Nowak", "Okafor", "Patel", "Rossi", "Silva", "Tanaka", "Novak", "Walsh", "Yilmaz",
)  # fmt: skip

TITLE_PATTERNS: dict[tuple[int, int], tuple[str, ...]] = {
    # (track index, level) -> patterns over {a} (main competency) and {b} (second competency)
    (0, 1): ("Introduction to {a}", "Foundations of {a}", "Principles of {a} and {b}"),
    (0, 2): ("{a} and {b}", "Intermediate {a}", "Theory of {a}"),
    (0, 3): ("{a}: Methods and Models", "Topics in {a} and {b}", "Applied Theory of {a}"),
    (0, 4): ("Advanced {a}", "Research Seminar in {a}", "Advanced Topics in {a} and {b}"),
    (1, 1): ("{a} Workshop", "Practical {a}", "{a} Essentials"),
    (1, 2): ("Applied {a}", "{a} in Practice", "{a} and {b} Lab"),
    (1, 3): ("Professional {a}", "{a} for the Workplace", "Applied {a} and {b}"),
    (1, 4): ("Advanced {a} Practice", "{a} Specialist Practice", "Industry Certification in {a}"),
    (2, 1): ("Team Project: {a}", "Community Project in {a}", "Design Challenge: {a}"),
    (2, 2): ("Industry Project: {a} and {b}", "Studio Project: {a}", "Work-Based Project in {a}"),
    (2, 3): ("Industry Project: {a} and {b}", "Work Placement: {a}", "Client Project in {a}"),
    (2, 4): ("Capstone Project: {a}", "Capstone: {a} and {b}", "Industry Capstone in {a}"),
}
TRACK_SENTENCES = (
    "Lectures, readings and problem classes develop the theory of {a} and {b}.",
    "Hands-on workshop sessions practise {a} and {b} with the tools used in industry.",
    "Students work in teams with an industry partner on a brief that calls for {a} and {b}.",
)
KIND_PREFERENCE = {  # track -> weight of each competency kind when a module picks what it builds
    0: {"knowledge": 3.0, "ability": 1.5, "skill": 1.0, "technology": 0.6, "value": 0.5},
    1: {"knowledge": 0.6, "ability": 0.8, "skill": 3.0, "technology": 3.0, "value": 0.5},
    2: {"knowledge": 0.7, "ability": 0.8, "skill": 2.5, "technology": 1.5, "value": 1.0},
}
DELIVERY = ("offline", "online", "blended")
DELIVERY_BY_TRACK = ((0.6, 0.15, 0.25), (0.75, 0.05, 0.2), (0.4, 0.1, 0.5))
ROUTES = ("general", "vocational", "transfer")
ROUTE_BY_ORIENTATION = {
    "academic": (0.75, 0.1, 0.15),
    "balanced": (0.55, 0.3, 0.15),
    "vocational": (0.35, 0.5, 0.15),
}
# With route skew s, the route shares of each orientation move a fraction s toward these (routes are
# sorted into programs of their kind), and students' module choices gain s · W_ROUTE_SKEW log-odds
# times their route's affinity to the module's track (general → academic, vocational → vocational).
ROUTE_SKEW_SHARES = {
    "academic": (0.92, 0.03, 0.05),
    "balanced": (0.55, 0.3, 0.15),
    "vocational": (0.05, 0.9, 0.05),
}
ROUTE_TRACK_AFFINITY = np.asarray(  # routes (ROUTES order) × tracks (academic, vocational, project)
    [[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32
)
W_ROUTE_SKEW = 2.5
ENROLLMENT_STATUS = ("completed", "failed", "withdrawn")
STUDENT_STATUS = ("active", "graduated", "dropped_out")
NOT_STARTED, ACTIVE, GRADUATED, DROPPED = -1, 0, 1, 2


@dataclass
class Institution:
    """A generated institution: the CSV frames and the latent truth the records were drawn from.

    ``ability`` is float32 (students × domains) in the row order of ``tables["students.csv"]``;
    ``general_ability`` float32 (students,) is the factor every domain ability loads on.
    """

    tables: dict[str, pd.DataFrame]
    ability: np.ndarray
    general_ability: np.ndarray
    domain_names: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def generate(
    size: str = "small", seed: int = 7, progress: Progress | None = None, route_skew: float = 0.0
) -> dict[str, pd.DataFrame]:
    """Generate an institution: one DataFrame per CSV file of records/csv_formats.py.

    Keys are file names (``"enrollments.csv"``); columns are exactly that file's columns, in order.
    The same ``(size, seed, route_skew)`` always gives identical frames. ``progress`` is called with a
    message and the fraction done. ``route_skew`` in [0, 1] (0: the usual institution) sorts entry
    routes into programs of their orientation and draws students of each route to its usual track
    (see :data:`ROUTE_SKEW_SHARES`, :data:`ROUTE_TRACK_AFFINITY`): the institution an equity audit
    must catch. Raises ValueError for an unknown size or a skew outside [0, 1].
    """
    return simulate(size, seed, progress, route_skew=route_skew).tables


def write_csv_set(tables: Mapping[str, pd.DataFrame], out_dir: Path) -> dict[str, int]:
    """Write each frame as ``out_dir/<name>`` (UTF-8, header, no index); returns rows per file.

    Creates ``out_dir`` when missing. Floats are written with up to 6 significant digits. Every file
    is written under a temporary name first and renamed only when all were written, so a failure
    leaves no half-written set behind.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    partial = {name: out_dir / f".{name}.partial" for name in tables}
    try:
        for name, frame in tables.items():
            frame.to_csv(partial[name], index=False, encoding="utf-8", float_format="%.6g")
            rows[name] = len(frame)
    except BaseException:
        for path in partial.values():
            path.unlink(missing_ok=True)
        raise
    for name, path in partial.items():
        path.replace(out_dir / name)
    log.info("wrote %d CSV files to %s", len(rows), out_dir)
    return rows


def simulate(
    size: str = "small", seed: int = 7, progress: Progress | None = None, route_skew: float = 0.0
) -> Institution:
    """Generate an institution and keep the latent student abilities (for tests and notebooks)."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if not 0.0 <= route_skew <= 1.0:
        raise ValueError(f"route_skew must be between 0 and 1, not {route_skew}")
    spec = SIZES[size]
    started = time.perf_counter()
    report = progress or (lambda _message, _fraction: None)
    streams = np.random.SeedSequence(seed).spawn(8)
    rng_catalog, rng_programs, rng_students, rng_sim, rng_market = (
        np.random.default_rng(s) for s in streams[:5]
    )

    report("building the competency taxonomy and occupations", 0.0)
    taxonomy = _Taxonomy.build()
    terms = _Terms.build(spec.years)
    market = _build_market(taxonomy, terms, rng_market)
    report("building programs and the module catalogue", 0.03)
    programs = _build_programs(spec, rng_programs)
    catalog = _build_catalog(spec, taxonomy, programs, rng_catalog)
    occupation_fit = _occupation_module_fit(catalog, market)
    _assign_requirements(programs, catalog, rng_programs)
    report("creating students", 0.06)
    students = _build_students(spec, programs, terms, market, rng_students, route_skew)
    _set_capacities(catalog, programs, students)
    enrollments = _simulate_terms(programs, catalog, students, terms, occupation_fit, rng_sim, report)
    report("assembling tables", 0.97)
    tables = _assemble(taxonomy, terms, market, programs, catalog, students, enrollments)
    report("done", 1.0)
    log.info(
        "generated a %s institution (seed %d): %d students, %d modules, %d enrollments in %.1f s",
        size,
        seed,
        students.size,
        catalog.size,
        len(enrollments),
        time.perf_counter() - started,
    )
    return Institution(
        tables=tables,
        ability=students.ability,
        general_ability=students.general_ability,
        domain_names=tuple(name for name, _ in DOMAINS),
    )


# ---------------------------------------------------------------------------------------------
# Taxonomy, terms, occupations and the labour market
# ---------------------------------------------------------------------------------------------


@dataclass
class _Taxonomy:
    names: list[str]
    kinds: list[str]
    domain_of: np.ndarray  # (C,) int
    by_domain: list[np.ndarray]  # domain -> competency indices

    @classmethod
    def build(cls) -> _Taxonomy:
        names, kinds, domains = [], [], []
        for d, (_domain, members) in enumerate(DOMAINS):
            for name, kind in members:
                names.append(name)
                kinds.append(kind)
                domains.append(d)
        domain_of = np.asarray(domains)
        return cls(names, kinds, domain_of, [np.flatnonzero(domain_of == d) for d in range(len(DOMAINS))])

    @property
    def ids(self) -> list[str]:
        return [f"C{i + 1:03d}" for i in range(len(self.names))]

    def description(self, index: int) -> str:
        name, kind, domain = self.names[index], self.kinds[index], DOMAINS[self.domain_of[index]][0]
        lead = {
            "knowledge": f"Knowledge of {name}: its principles, methods and applications",
            "skill": f"Skill in {name}, applied to practical tasks",
            "ability": f"The ability of {name}, which supports learning and performance",
            "technology": f"Working use of {name} as a tool",
            "value": f"{name} as a professional value that guides conduct",
        }[kind]
        return f"{lead} ({domain.lower()})."


@dataclass
class _Terms:
    codes: list[str]  # simulated terms, then FUTURE_TERMS more
    starts_on: list[str]
    years: list[int]
    n_simulated: int

    @classmethod
    def build(cls, years: int) -> _Terms:
        first = LAST_SIMULATED_YEAR - years + 1
        codes, starts, term_years = [], [], []
        for year in range(first, LAST_SIMULATED_YEAR + 1 + math.ceil(FUTURE_TERMS / 2)):
            for half, month in ((1, 3), (2, 9)):
                codes.append(f"{year}-{half}")
                starts.append(dt.date(year, month, 1).isoformat())
                term_years.append(year)
        total = 2 * years + FUTURE_TERMS
        return cls(codes[:total], starts[:total], term_years[:total], 2 * years)


@dataclass
class _Market:
    occupation_codes: list[str]
    titles: list[str]
    descriptions: list[str]
    importance: np.ndarray  # (O, C) float32, 0 where the occupation does not call for it
    level: np.ndarray  # (O, C) float32
    demand: pd.DataFrame


def _build_market(taxonomy: _Taxonomy, terms: _Terms, rng: np.random.Generator) -> _Market:
    n_occ, n_comp = len(OCCUPATIONS), len(taxonomy.names)
    importance = np.zeros((n_occ, n_comp), dtype=np.float32)
    for o, (_code, _title, domains, _growth) in enumerate(OCCUPATIONS):
        plan = [(domains[0], 6, 0.65, 1.0)]
        plan += [(d, 4, 0.45, 0.85) for d in domains[1:]]
        plan += [(COG, 4, 0.35, 0.75), (PRO, 2, 0.3, 0.7)]
        for domain, count, low, high in plan:
            members = taxonomy.by_domain[domain]
            picked = rng.choice(members, size=min(count, len(members)), replace=False)
            importance[o, picked] = np.maximum(importance[o, picked], rng.uniform(low, high, len(picked)))
    importance = np.round(importance, 2)
    level = np.where(
        importance > 0,
        np.clip(np.round(1.5 + 5.0 * importance + rng.normal(0, 0.4, importance.shape), 1), 1, 7),
        0,
    ).astype(np.float32)
    descriptions = []
    for o, (_code, title, _domains, _growth) in enumerate(OCCUPATIONS):
        top = np.argsort(-importance[o], kind="stable")[:4]
        named = ", ".join(taxonomy.names[c] for c in top[:-1]) + f" and {taxonomy.names[top[-1]]}"
        descriptions.append(f"{title}: roles that call for {named}.")

    years = sorted(set(terms.years[: terms.n_simulated]))
    base = rng.lognormal(mean=7.0, sigma=0.8, size=n_occ)  # postings in the first year, whole country
    region_share = rng.dirichlet(np.full(len(REGIONS), 4.0), size=n_occ)  # (O, R)
    trend = np.asarray([g for *_rest, g in OCCUPATIONS]) + rng.normal(0, 0.01, n_occ)
    region_tilt = rng.normal(0, 0.015, (n_occ, len(REGIONS)))
    step = np.arange(len(years))
    yearly = 1.0 + trend[:, None, None] + region_tilt[:, :, None]  # (O, R, 1)
    noise = rng.lognormal(0, 0.04, (n_occ, len(REGIONS), len(years)))
    postings = base[:, None, None] * region_share[:, :, None] * yearly ** step[None, None, :] * noise
    postings = np.maximum(np.round(postings), 1.0)
    growth = np.empty_like(postings)
    growth[:, :, 0] = np.broadcast_to(yearly[:, :, 0], growth[:, :, 0].shape) - 1.0
    growth[:, :, 1:] = postings[:, :, 1:] / postings[:, :, :-1] - 1.0
    o_idx, r_idx, y_idx = np.meshgrid(np.arange(n_occ), np.arange(len(REGIONS)), step, indexing="ij")
    codes = np.asarray([code for code, *_ in OCCUPATIONS], dtype=object)
    demand = pd.DataFrame(
        {
            "occupation_id": codes[o_idx.ravel()],
            "region": np.asarray(REGIONS, dtype=object)[r_idx.ravel()],
            "period": np.asarray([str(y) for y in years], dtype=object)[y_idx.ravel()],
            "postings": postings.ravel(),
            "growth": np.round(growth.ravel(), 4),
        }
    )
    return _Market(
        occupation_codes=[code for code, *_ in OCCUPATIONS],
        titles=[title for _c, title, *_ in OCCUPATIONS],
        descriptions=descriptions,
        importance=importance,
        level=level,
        demand=demand,
    )


# ---------------------------------------------------------------------------------------------
# Programs and the module catalogue
# ---------------------------------------------------------------------------------------------


@dataclass
class _Program:
    id: str
    name: str
    department: str
    orientation: str
    focus: tuple[int, ...]
    occupations: tuple[str, ...]
    targets: tuple[float, float, float]
    credits_to_graduate: int
    popularity: float
    catalogue: np.ndarray | None = None  # (K,) global module indices, sorted
    required: np.ndarray | None = None  # (K,) bool over the catalogue

    @property
    def expected_terms(self) -> int:
        return self.credits_to_graduate // 30


def _build_programs(spec: SizeSpec, rng: np.random.Generator) -> list[_Program]:
    programs = []
    for p in range(spec.programs):
        name, department, orientation, focus, occupations = PROGRAM_TEMPLATES[p % len(PROGRAM_TEMPLATES)]
        if spec.programs > len(PROGRAM_TEMPLATES):
            name = f"{name} ({CAMPUSES[p // len(PROGRAM_TEMPLATES)]})"
        (academic, vocational, _project), credits = ORIENTATIONS[orientation]
        academic = round(float(academic + rng.uniform(-0.05, 0.05)), 2)
        vocational = round(float(vocational + rng.uniform(-0.05, 0.05)), 2)
        project = round(1.0 - academic - vocational, 2)
        programs.append(
            _Program(
                id=f"P{p + 1:02d}",
                name=name,
                department=department,
                orientation=orientation,
                focus=focus,
                occupations=occupations,
                targets=(academic, vocational, project),
                credits_to_graduate=credits,
                popularity=float(rng.lognormal(0, 0.35)),
            )
        )
    return programs


@dataclass
class _Catalog:
    """Modules as parallel arrays (M,) plus their competencies as a sparse (M, C) matrix."""

    department: list[str]
    code: list[str]
    title: list[str]
    description: list[str]
    track: np.ndarray  # int 0 academic, 1 vocational, 2 project
    level: np.ndarray  # int 1-4
    credits: np.ndarray  # int 5, 10 or 15
    delivery: np.ndarray  # int index into DELIVERY
    pass_grade: np.ndarray  # float
    plan_stage: np.ndarray  # int: the term slot (0-based) the module is meant for
    parity: np.ndarray  # int: 0 offered in term 1, 1 in term 2, 2 in both
    first_year: np.ndarray  # int: index of the first year the module is offered
    difficulty: np.ndarray  # float32
    pool: np.ndarray  # int: which pool the module belongs to
    competencies: sp.csr_matrix  # (M, C) float32 weights 0-1
    competency_level: sp.csr_matrix  # (M, C) levels 1-7
    domain_mix: np.ndarray  # (M, D) float32, rows sum to 1
    prerequisites: pd.DataFrame  # module, group, requires, threshold, min_grade
    capacity: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.code)


def _build_catalog(
    spec: SizeSpec, taxonomy: _Taxonomy, programs: list[_Program], rng: np.random.Generator
) -> _Catalog:
    """Modules in pools: a general pool for everyone, a shared pool per department, one per program.

    A program's catalogue is its own pool, its department's pool and the general pool; prerequisites
    point only into pools every catalogue holding the module also holds, and only to lower levels
    (so the prerequisite graph has no cycles).
    """
    departments = sorted({p.department for p in programs}, key=list(DEPARTMENTS).index)
    n_general = int(np.clip(round(0.08 * spec.modules), 6, 40))
    remaining = spec.modules - n_general
    per_department = _split_counts(remaining, [sum(p.department == d for p in programs) for d in departments])
    # pools: (name, department, focus domains, track shares, level shares, visible parent pools)
    pools: list[tuple[str, str, tuple[int, ...], tuple[float, ...], tuple[float, ...], list[int], int]] = []
    general_name, _prefix, general_focus = GENERAL_DEPARTMENT
    pools.append(
        ("general", general_name, general_focus, (0.7, 0.3, 0.0), (0.5, 0.35, 0.15, 0.0), [], n_general)
    )
    department_pool: dict[str, int] = {}
    for d, department in enumerate(departments):
        members = [p for p in programs if p.department == department]
        shared = round(spec.shared_share * per_department[d])
        shares = np.mean([p.targets for p in members], axis=0)
        department_pool[department] = len(pools)
        focus = DEPARTMENTS[department][1]
        pools.append(("department", department, focus, tuple(shares), (0.3, 0.3, 0.25, 0.15), [0], shared))
        own_counts = _split_counts(per_department[d] - shared, [1] * len(members))
        for program, own in zip(members, own_counts, strict=True):
            levels = (0.3, 0.3, 0.3, 0.1) if program.orientation == "vocational" else (0.28, 0.26, 0.24, 0.22)
            parents = [department_pool[department], 0]
            pools.append(("program", department, program.focus, program.targets, levels, parents, own))

    n_comp = len(taxonomy.names)
    rows: dict[str, list] = {
        k: [] for k in ("department", "track", "level", "credits", "pool", "main_domain")
    }
    comp_rows, comp_cols, comp_weights = [], [], []
    for pool_index, (_kind, department, focus, track_shares, level_shares, _parents, count) in enumerate(
        pools
    ):
        focus_weights = np.asarray([3.0] + [1.5] * (len(focus) - 1))
        focus_weights /= focus_weights.sum()
        for _ in range(count):
            module_track = int(rng.choice(3, p=np.asarray(track_shares) / sum(track_shares)))
            module_level = int(rng.choice(4, p=level_shares)) + 1
            if module_track == 2 and module_level == 1 and rng.random() < 0.8:
                module_level = int(rng.integers(2, 5))
            main = int(focus[rng.choice(len(focus), p=focus_weights)])
            picked = _pick_competencies(taxonomy, main, focus, module_track, rng)
            weights = np.round(
                np.concatenate([[rng.uniform(0.6, 1.0)], rng.uniform(0.2, 0.7, len(picked) - 1)]), 2
            )
            m = len(rows["track"])
            comp_rows += [m] * len(picked)
            comp_cols += list(picked)
            comp_weights += list(weights)
            credits = int(
                rng.choice([5, 10, 15], p=(0.8, 0.17, 0.03) if module_track != 2 else (0.3, 0.5, 0.2))
            )
            for key, value in (
                ("department", department),
                ("track", module_track),
                ("level", module_level),
                ("credits", credits),
                ("pool", pool_index),
                ("main_domain", main),
            ):
                rows[key].append(value)

    n_modules = len(rows["track"])
    track = np.asarray(rows["track"])
    level = np.asarray(rows["level"])
    competencies = sp.csr_matrix(
        (np.asarray(comp_weights, dtype=np.float32), (comp_rows, comp_cols)), shape=(n_modules, n_comp)
    )
    comp_level = competencies.copy()
    comp_level.data = np.clip(
        np.round(
            level[np.repeat(np.arange(n_modules), np.diff(competencies.indptr))]
            + 1
            + rng.normal(0, 0.7, competencies.nnz)
        ),
        1,
        7,
    ).astype(np.float32)
    domain_onehot = sp.csr_matrix(
        (np.ones(n_comp, dtype=np.float32), (np.arange(n_comp), taxonomy.domain_of)),
        shape=(n_comp, len(DOMAINS)),
    )
    domain_mix = np.asarray((competencies @ domain_onehot).todense(), dtype=np.float32)
    domain_mix /= domain_mix.sum(axis=1, keepdims=True)

    half = rng.integers(0, 2, n_modules)
    plan_stage = 2 * (level - 1) + half
    parity = np.where(rng.random(n_modules) < 0.35, 2, half)
    years = spec.years
    first_year = np.where(rng.random(n_modules) < 0.06, rng.integers(2, max(3, years - 1), n_modules), 0)
    pass_grade = np.full(n_modules, DEFAULT_PASS_GRADE)
    main_domain = np.asarray(rows["main_domain"])
    strict = (main_domain == HEALTH) & (track != 0) & (rng.random(n_modules) < 0.5)
    pass_grade[strict] = 70.0
    lenient = (track == 1) & ~strict & (rng.random(n_modules) < 0.08)
    pass_grade[lenient] = 50.0
    difficulty = (0.3 * (level - 2.5) + rng.normal(0, 0.35, n_modules)).astype(np.float32)
    delivery = np.asarray([rng.choice(3, p=DELIVERY_BY_TRACK[t]) for t in track])

    codes, titles, descriptions = _name_modules(taxonomy, rows["department"], track, level, competencies, rng)
    pool = np.asarray(rows["pool"])
    visible = [[p, *pools[p][5]] for p in range(len(pools))]
    prerequisites = _build_prerequisites(level, pool, visible, domain_mix, pass_grade, rng)
    _attach_catalogues(programs, pools, pool)
    return _Catalog(
        department=rows["department"],
        code=codes,
        title=titles,
        description=descriptions,
        track=track,
        level=level,
        credits=np.asarray(rows["credits"]),
        delivery=delivery,
        pass_grade=pass_grade,
        plan_stage=plan_stage,
        parity=parity,
        first_year=first_year,
        difficulty=difficulty,
        pool=pool,
        competencies=competencies,
        competency_level=comp_level,
        domain_mix=domain_mix,
        prerequisites=prerequisites,
    )


def _attach_catalogues(programs: list[_Program], pools: list, pool: np.ndarray) -> None:
    """Give each program its catalogue: its own pool plus the pools it can see.

    Program pools were created department by department, programs in input order within one.
    """
    program_pools = [i for i, entry in enumerate(pools) if entry[0] == "program"]
    ordered = [p for department in DEPARTMENTS for p in programs if p.department == department]
    for program, own in zip(ordered, program_pools, strict=True):
        program.catalogue = np.flatnonzero(np.isin(pool, [own, *pools[own][5]]))


def _split_counts(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainders)."""
    shares = np.asarray(weights, dtype=float) / sum(weights) * total
    counts = np.floor(shares).astype(int)
    for i in np.argsort(-(shares - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return [int(c) for c in counts]


def _pick_competencies(
    taxonomy: _Taxonomy, main: int, focus: tuple[int, ...], track: int, rng: np.random.Generator
) -> np.ndarray:
    """Competency indices a module builds: 2-3 from its main domain, maybe one from another focus
    domain, and a general one (always for projects). The first is the one it is named after."""

    def draw(domain: int, count: int, exclude: list[int]) -> list[int]:
        members = np.asarray([c for c in taxonomy.by_domain[domain] if c not in exclude])
        weights = np.asarray([KIND_PREFERENCE[track][taxonomy.kinds[c]] for c in members])
        return list(
            rng.choice(members, size=min(count, len(members)), replace=False, p=weights / weights.sum())
        )

    picked = draw(main, int(rng.integers(2, 4)), [])
    others = [d for d in focus if d != main]
    if others and rng.random() < 0.5:
        picked += draw(int(rng.choice(others)), 1, picked)
    if track == 2 or rng.random() < 0.5:
        picked += draw(int(rng.choice(GENERAL_DOMAINS)), 1, picked)
    return np.asarray(picked)


def _name_modules(
    taxonomy: _Taxonomy,
    departments: list[str],
    track: np.ndarray,
    level: np.ndarray,
    competencies: sp.csr_matrix,
    rng: np.random.Generator,
) -> tuple[list[str], list[str], list[str]]:
    """Codes (``CMP2014``), titles and descriptions written from each module's competencies."""
    codes, titles, descriptions = [], [], []
    seen_titles: dict[str, int] = {}
    sequence: dict[tuple[str, int], int] = {}
    prefixes = {name: prefix for name, (prefix, _) in DEPARTMENTS.items()}
    prefixes[GENERAL_DEPARTMENT[0]] = GENERAL_DEPARTMENT[1]
    for m, department in enumerate(departments):
        start, end = competencies.indptr[m], competencies.indptr[m + 1]
        names = [taxonomy.names[c] for c in competencies.indices[start:end]]
        a, b = names[0], names[1]
        pattern = TITLE_PATTERNS[(int(track[m]), int(level[m]))][int(rng.integers(0, 3))]
        title = pattern.format(a=a, b=b)
        if title in seen_titles:
            seen_titles[title] += 1
            title = f"{title} {_roman(seen_titles[title])}"
        else:
            seen_titles[title] = 1
        key = (department, int(level[m]))
        sequence[key] = sequence.get(key, 0) + 1
        codes.append(f"{prefixes[department]}{level[m]}{sequence[key]:03d}")
        titles.append(title)
        listed = ", ".join(names[:-1]) + f" and {names[-1]}"
        descriptions.append(
            f"{title}. A level {level[m]} {TRACKS[track[m]]} module in {department} that builds {listed}. "
            + TRACK_SENTENCES[track[m]].format(a=a, b=b)
            + f" By the end students can apply {a} with confidence."
        )
    return codes, titles, descriptions


def _roman(number: int) -> str:
    numerals = ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))
    out = ""
    for value, letters in numerals:
        while number >= value:
            out += letters
            number -= value
    return out


def _build_prerequisites(
    level: np.ndarray,
    pool: np.ndarray,
    visible: list[list[int]],
    domain_mix: np.ndarray,
    pass_grade: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Prerequisite groups: alternatives within a group, every group required, lower levels only.

    ``threshold`` is the grade a student needed: ``min_grade`` when set, else the higher of the two
    modules' pass grades (safe under either reading of a NULL min_grade).
    """
    rows = []
    chance = {2: 0.55, 3: 0.7, 4: 0.75}
    for m in np.flatnonzero(level >= 2):
        if rng.random() >= chance[int(level[m])]:
            continue
        candidates = np.flatnonzero(np.isin(pool, visible[pool[m]]) & (level < level[m]))
        if len(candidates) == 0:
            continue
        affinity = domain_mix[candidates] @ domain_mix[m] + 0.3 * (level[candidates] == level[m] - 1)
        order = candidates[np.argsort(-(affinity + rng.gumbel(0, 0.15, len(candidates))), kind="stable")]
        n_groups = 2 if rng.random() < 0.25 else 1
        cursor = 0
        for group in range(1, n_groups + 1):
            alternatives = 2 if rng.random() < 0.35 else 1
            chosen = order[cursor : cursor + alternatives]
            cursor += alternatives
            if len(chosen) == 0:
                break
            min_grade = float(rng.choice([65.0, 70.0])) if rng.random() < 0.25 else math.nan
            for r in chosen:
                threshold = min_grade if not math.isnan(min_grade) else max(pass_grade[r], pass_grade[m])
                rows.append((int(m), group, int(r), threshold, min_grade))
    return pd.DataFrame(rows, columns=["module", "group", "requires", "threshold", "min_grade"])


def _occupation_module_fit(catalog: _Catalog, market: _Market) -> np.ndarray:
    """How much each module builds what each occupation calls for: (O, M) float32, each row max 1."""
    fit = np.asarray((catalog.competencies @ market.importance.T.astype(np.float32)).T, dtype=np.float32)
    return fit / np.maximum(fit.max(axis=1, keepdims=True), 1e-6)


def _assign_requirements(programs: list[_Program], catalog: _Catalog, rng: np.random.Generator) -> None:
    """Each program requires a core: about one or two modules per planned term, plus a project."""
    for program in programs:
        assert program.catalogue is not None
        cat = program.catalogue
        required = np.zeros(len(cat), dtype=bool)
        own_pool = catalog.pool[cat].max()
        for stage in range(program.expected_terms):
            candidates = np.flatnonzero((catalog.plan_stage[cat] == stage) & (catalog.first_year[cat] == 0))
            if len(candidates) == 0:
                continue
            preference = 1.0 + 2.0 * (catalog.pool[cat[candidates]] == own_pool)
            count = min(len(candidates), 2 if stage == 0 else 1)
            picks = rng.choice(candidates, size=count, replace=False, p=preference / preference.sum())
            required[picks] = True
        projects = np.flatnonzero(
            (catalog.track[cat] == 2) & (catalog.plan_stage[cat] < program.expected_terms) & ~required
        )
        if len(projects):
            required[projects[np.argmax(catalog.plan_stage[cat[projects]])]] = True
        program.required = required


# ---------------------------------------------------------------------------------------------
# Students
# ---------------------------------------------------------------------------------------------


@dataclass
class _Students:
    program: np.ndarray  # (N,) program index
    entry: np.ndarray  # (N,) term index of entry
    route: np.ndarray  # (N,) index into ROUTES
    cap: np.ndarray  # (N,) max credits per term
    ability: np.ndarray  # (N, D) float32
    general_ability: np.ndarray  # (N,) float32
    practical: np.ndarray  # (N,) float32 extra ability on vocational and project modules
    interest: np.ndarray  # (N, D) float32, rows sum to 1
    goals: np.ndarray  # (N, O) float32 goal weights
    goal_set: np.ndarray  # (N,) term index the goals were set (-1: from the start)
    advisor: np.ndarray  # (N,) advisor index
    advisors: pd.DataFrame
    attributes: pd.DataFrame
    status: np.ndarray | None = None  # (N,) final status
    route_bias: np.ndarray | None = None  # (routes, 3) float32 log-odds per track; None without skew

    @property
    def size(self) -> int:
        return len(self.program)


def _build_students(
    spec: SizeSpec,
    programs: list[_Program],
    terms: _Terms,
    market: _Market,
    rng: np.random.Generator,
    route_skew: float = 0.0,
) -> _Students:
    n, n_dom = spec.students, len(DOMAINS)
    growth = 1.03 ** np.arange(spec.years)
    per_year = np.asarray(_split_counts(n, list((growth * 1000).astype(int))))
    year = np.repeat(np.arange(spec.years), per_year)
    mid_year = rng.random(n) < 0.1  # a small intake in the second term of each year
    entry = 2 * year + mid_year
    popularity = np.asarray([p.popularity for p in programs])
    program = rng.choice(len(programs), size=n, p=popularity / popularity.sum())
    order = np.lexsort((program, entry))  # ids follow entry order
    entry, program = entry[order], program[order]

    orientation = np.asarray([p.orientation for p in programs])[program]
    route_draw = rng.random(n)
    route = np.zeros(n, dtype=int)
    for name, usual_shares in ROUTE_BY_ORIENTATION.items():
        rows = orientation == name
        shares = np.asarray(usual_shares)
        if route_skew > 0:
            shares = (1 - route_skew) * shares + route_skew * np.asarray(ROUTE_SKEW_SHARES[name])
        route[rows] = np.searchsorted(np.cumsum(shares), route_draw[rows] * 0.999999)

    general = rng.normal(0, 1, n).astype(np.float32) + 0.2 * (route == 2)
    specific = rng.normal(0, 1, (n, n_dom)).astype(np.float32)
    ability = (0.75 * general[:, None] + 0.65 * specific).astype(np.float32)
    practical = (0.5 * rng.normal(0, 1, n) + 0.7 * (route == 1) - 0.1 * (route == 0)).astype(np.float32)

    focus = np.zeros((len(programs), n_dom), dtype=np.float32)
    for p, prog in enumerate(programs):
        focus[p, list(prog.focus)] = 1.0
    interest = rng.gamma(0.3 + 2.0 * focus[program], 1.0).astype(np.float32)
    interest /= interest.sum(axis=1, keepdims=True)

    # goals: 0-3 occupations, mostly aligned with the program, otherwise with the student's interests
    occ_domains = np.zeros((len(OCCUPATIONS), n_dom), dtype=np.float32)
    for o, (_code, _title, domains, _g) in enumerate(OCCUPATIONS):
        occ_domains[o, list(domains)] = np.linspace(1.0, 0.5, len(domains))
    code_index = {code: o for o, code in enumerate(market.occupation_codes)}
    aligned = np.zeros((len(programs), len(OCCUPATIONS)), dtype=np.float32)
    for p, prog in enumerate(programs):
        aligned[p, [code_index[c] for c in prog.occupations]] = 1.0
    affinity = 4.0 * aligned[program] + 3.0 * interest @ occ_domains.T + 0.05
    keys = np.log(affinity) + rng.gumbel(size=affinity.shape)
    ranked = np.argsort(-keys, axis=1, kind="stable")[:, :3]
    n_goals = rng.choice(4, size=n, p=(0.15, 0.5, 0.27, 0.08))
    goals = np.zeros((n, len(OCCUPATIONS)), dtype=np.float32)
    for rank, weight in enumerate((1.0, 0.6, 0.4)):
        rows = np.flatnonzero(n_goals > rank)
        goals[rows, ranked[rows, rank]] = weight
    late = rng.random(n) < 0.45
    goal_set = np.where(late, np.minimum(entry + rng.integers(1, 6, n), terms.n_simulated - 1), -1)

    cap = rng.choice([30, 20, 35, 40], size=n, p=(0.72, 0.13, 0.10, 0.05))

    # advisors: one per ~150 students of a department, at least two per department
    departments = [p.department for p in programs]
    department_names = sorted(set(departments), key=list(DEPARTMENTS).index)
    student_department = np.asarray([department_names.index(d) for d in departments])[program]
    advisor_rows: list[tuple[str, str]] = []
    advisor_of = np.zeros(n, dtype=int)
    for d, department in enumerate(department_names):
        members = np.flatnonzero(student_department == d)
        count = max(2, math.ceil(len(members) / 150))
        first = len(advisor_rows)
        for _ in range(count):
            advisor_rows.append((f"Dr {rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}", department))
        advisor_of[members] = first + rng.integers(0, count, len(members))
    advisors = pd.DataFrame(
        {
            "id": [f"A{i + 1:04d}" for i in range(len(advisor_rows))],
            "name": [name for name, _ in advisor_rows],
            "department": [department for _, department in advisor_rows],
        }
    )

    gender = np.asarray(["female", "male", "non-binary"], dtype=object)[rng.choice(3, n, p=(0.5, 0.48, 0.02))]
    first_gen_rate = np.where(route == 1, 0.45, 0.28)
    first_gen = np.where(rng.random(n) < first_gen_rate, "yes", "no").astype(object)
    disclosed_gender = rng.random(n) < 0.95
    disclosed_first_gen = rng.random(n) < 0.9
    attributes = pd.DataFrame(
        {
            "student": np.concatenate(
                [np.flatnonzero(disclosed_gender), np.flatnonzero(disclosed_first_gen)]
            ),
            "name": ["gender"] * int(disclosed_gender.sum())
            + ["first_generation"] * int(disclosed_first_gen.sum()),
            "value": np.concatenate([gender[disclosed_gender], first_gen[disclosed_first_gen]]),
        }
    )
    return _Students(
        program=program,
        entry=entry,
        route=route,
        cap=cap,
        ability=ability,
        general_ability=general.astype(np.float32),
        practical=practical,
        interest=interest,
        goals=goals,
        goal_set=goal_set,
        advisor=advisor_of,
        advisors=advisors,
        attributes=attributes,
        route_bias=(W_ROUTE_SKEW * route_skew * ROUTE_TRACK_AFFINITY).astype(np.float32)
        if route_skew > 0
        else None,
    )


def _set_capacities(catalog: _Catalog, programs: list[_Program], students: _Students) -> None:
    """Seats per offering: generous for required modules, tighter for electives (rounded to 5)."""
    peak_cohort = np.asarray(
        [np.bincount(students.entry[students.program == p] // 2).max(initial=1) for p in range(len(programs))]
    )
    expected = np.zeros(catalog.size)
    for p, program in enumerate(programs):
        assert program.catalogue is not None and program.required is not None
        modules_taken = program.credits_to_graduate / 9.0
        elective_share = min(1.0, 1.6 * modules_taken / len(program.catalogue))
        take_rate = np.where(program.required, 1.25, elective_share)
        expected[program.catalogue] += peak_cohort[p] * take_rate
    catalog.capacity = (np.maximum(10, np.ceil(1.3 * expected / 5) * 5)).astype(int)


# ---------------------------------------------------------------------------------------------
# The term-by-term simulation
# ---------------------------------------------------------------------------------------------

# weights of the choice model (log-odds scale; a Gumbel draw of scale 1 is added to each)
W_PLAN, W_REQUIRED, W_PEER, W_SUCCESSOR, W_INTEREST, W_GOAL, W_TRACK, W_RETAKE = (
    1.5, 2.0, 1.0, 5.0, 4.0, 3.5, 3.0, 1.2,
)  # fmt: skip


@dataclass
class _ProgramState:
    """A program's view of the simulation: catalogue-local arrays and its students' records."""

    index: int
    cat: np.ndarray  # (K,) global module indices
    students: np.ndarray  # (n_p,) global student indices
    best: np.ndarray  # (n_p, K) int8 best grade so far, -1 never graded
    last_rows: np.ndarray  # program-local rows and catalogue columns of last term's passes
    last_cols: np.ndarray
    plan: np.ndarray  # (MAX_STAGE, K) float32 stage affinity plus the required bonus
    peer: np.ndarray  # (MAX_STAGE, K) float32 share of peers at that stage who took the module
    successor: np.ndarray  # (K, K) float32: taking row module makes column module a typical next step
    offered: np.ndarray  # (T, K) bool
    level: np.ndarray
    credits: np.ndarray  # float32
    track_onehot: np.ndarray  # (3, K) float32
    pass_grade: np.ndarray  # int8
    required: np.ndarray
    domain_mix_t: np.ndarray  # (D, K) float32
    goal_fit: np.ndarray  # (O, K) float32
    prereq_cols: np.ndarray  # (R,) catalogue-local required module of each prerequisite row
    prereq_threshold: np.ndarray  # (R,) int8
    # prerequisite logic as column passes with no repeated target inside a pass:
    # group |= row (alternatives), then module &= group (every group required)
    row_passes: list[tuple[np.ndarray, np.ndarray]]  # (prerequisite rows, their groups)
    group_passes: list[tuple[np.ndarray, np.ndarray]]  # (groups, their catalogue columns)
    n_groups: int
    targets: np.ndarray  # (3,) float32


def _program_state(
    p: int,
    program: _Program,
    catalog: _Catalog,
    students: _Students,
    terms: _Terms,
    occupation_fit: np.ndarray,
    rng: np.random.Generator,
) -> _ProgramState:
    assert program.catalogue is not None and program.required is not None
    cat = program.catalogue
    k = len(cat)
    local = np.full(catalog.size, -1)
    local[cat] = np.arange(k)
    members = np.flatnonzero(students.program == p)

    stage_grid = np.arange(MAX_STAGE)[:, None]
    plan_stage = catalog.plan_stage[cat][None, :]
    plan = W_PLAN * np.exp(-0.5 * (stage_grid - plan_stage) ** 2 / 0.8)
    plan += W_REQUIRED * program.required[None, :] * (stage_grid >= plan_stage - 1)

    prereq = catalog.prerequisites
    prereq = prereq[np.isin(prereq["module"].to_numpy(), cat)]
    module_local = local[prereq["module"].to_numpy()]
    requires_local = local[prereq["requires"].to_numpy()]
    assert (requires_local >= 0).all(), "prerequisites must stay within the catalogue"
    group_keys = module_local * 8 + prereq["group"].to_numpy()
    unique_groups, group_of_row = np.unique(group_keys, return_inverse=True)
    row_passes = _column_passes(np.arange(len(prereq)), group_of_row)
    group_passes = _column_passes(np.arange(len(unique_groups)), unique_groups // 8)

    # typical next steps: formal prerequisites, plus one or two program-specific follow-ons per module
    successor = np.zeros((k, k), dtype=np.float32)
    successor[requires_local, module_local] = 1.0
    mix = catalog.domain_mix[cat]
    overlap = mix @ mix.T + rng.gumbel(0, 0.2, (k, k)).astype(np.float32)
    next_stage = catalog.plan_stage[cat][None, :] == catalog.plan_stage[cat][:, None] + 1
    overlap = np.where(next_stage, overlap, -np.inf)
    follow_ons = np.argsort(-overlap, axis=1, kind="stable")[:, :2]
    rows = np.repeat(np.arange(k), 2)
    valid = np.isfinite(overlap[rows, follow_ons.ravel()])
    successor[rows[valid], follow_ons.ravel()[valid]] += 0.8

    term_parity = np.arange(len(terms.codes)) % 2
    term_year = np.arange(len(terms.codes)) // 2
    parity = catalog.parity[cat]
    offered = ((parity[None, :] == 2) | (parity[None, :] == term_parity[:, None])) & (
        term_year[:, None] >= catalog.first_year[cat][None, :]
    )
    return _ProgramState(
        index=p,
        cat=cat,
        students=members,
        best=np.full((len(members), k), -1, dtype=np.int8),
        last_rows=np.zeros(0, dtype=np.int64),
        last_cols=np.zeros(0, dtype=np.int64),
        plan=plan.astype(np.float32),
        peer=np.zeros((MAX_STAGE, k), dtype=np.float32),
        successor=successor,
        offered=offered,
        level=catalog.level[cat],
        credits=catalog.credits[cat].astype(np.float32),
        track_onehot=np.eye(3, dtype=np.float32)[catalog.track[cat]].T.copy(),
        pass_grade=catalog.pass_grade[cat].astype(np.int8),
        required=program.required,
        domain_mix_t=mix.T.copy(),
        goal_fit=occupation_fit[:, cat].copy(),
        prereq_cols=requires_local,
        prereq_threshold=np.ceil(prereq["threshold"].to_numpy()).astype(np.int8),
        row_passes=row_passes,
        group_passes=group_passes,
        n_groups=len(unique_groups),
        targets=np.asarray(program.targets, dtype=np.float32),
    )


def _column_passes(sources: np.ndarray, targets: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split (source, target) column pairs into passes in which no target repeats.

    Lets ``out[:, targets] |= values[:, sources]`` run as fancy-indexed updates: with a repeated
    target inside one pass only the last write would count.
    """
    order = np.argsort(targets, kind="stable")
    sorted_targets = targets[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_targets, sorted_targets, side="left")
    return [
        (sources[order[rank == r]], sorted_targets[rank == r]) for r in range(int(rank.max(initial=-1)) + 1)
    ]


@dataclass
class _Choices:
    """One term's tentative enrolments (parallel arrays)."""

    student: np.ndarray
    module: np.ndarray
    program: np.ndarray
    row: np.ndarray  # program-local student row
    col: np.ndarray  # catalogue-local module column
    stage: np.ndarray
    priority: np.ndarray  # the Gumbel-perturbed score: seats go to the keenest first
    fit: np.ndarray  # float32 ability·module domains plus goal motivation


def _simulate_terms(
    programs: list[_Program],
    catalog: _Catalog,
    students: _Students,
    terms: _Terms,
    occupation_fit: np.ndarray,
    rng: np.random.Generator,
    report: Progress,
) -> pd.DataFrame:
    """Simulate every closed term; returns enrolments as integer-coded columns.

    Columns: student, module, term (indices), status (index into ENROLLMENT_STATUS), grade (float, NaN
    for withdrawals). Sets ``students.status``.
    """
    states = [
        _program_state(p, prog, catalog, students, terms, occupation_fit, rng)
        for p, prog in enumerate(programs)
    ]
    status = np.full(students.size, NOT_STARTED)
    earned = np.zeros(students.size, dtype=np.float32)
    track_credits = np.zeros((students.size, 3), dtype=np.float32)
    idle_terms = np.zeros(students.size, dtype=int)
    to_graduate = np.asarray([p.credits_to_graduate for p in programs], dtype=np.float32)[students.program]
    max_terms = np.asarray([2 * p.expected_terms + 4 for p in programs])[students.program]
    capacity = catalog.capacity
    assert capacity is not None
    parts: list[pd.DataFrame] = []

    for term in range(terms.n_simulated):
        report(f"simulating term {terms.codes[term]}", 0.08 + 0.88 * term / terms.n_simulated)
        status[(students.entry == term) & (status == NOT_STARTED)] = ACTIVE
        choices = _choose_modules(term, states, students, status, earned, track_credits, rng)
        accepted = _apply_capacity(choices, capacity)
        choices = _Choices(**{name: values[accepted] for name, values in vars(choices).items()})
        outcome_status, grades = _grade(choices, catalog, students, rng)
        parts.append(
            pd.DataFrame(
                {
                    "student": choices.student,
                    "module": choices.module,
                    "term": np.full(len(choices.student), term),
                    "status": outcome_status,
                    "grade": grades,
                }
            )
        )
        _update_records(
            term,
            states,
            choices,
            outcome_status,
            grades,
            status,
            students.entry,
            catalog,
            earned,
            track_credits,
        )
        _progress_students(
            choices, outcome_status, status, earned, to_graduate, idle_terms, students, term, max_terms, rng
        )

    final = np.where(status == GRADUATED, 1, np.where(status == DROPPED, 2, 0))
    students.status = final
    return pd.concat(parts, ignore_index=True)


def _choose_modules(
    term: int,
    states: list[_ProgramState],
    students: _Students,
    status: np.ndarray,
    earned: np.ndarray,
    track_credits: np.ndarray,
    rng: np.random.Generator,
) -> _Choices:
    """Every active student picks modules for ``term``: Gumbel-max choices filling a credit budget.

    Scores (student × catalogue module) combine the program's typical plan for the student's stage,
    what peers at that stage took, typical next steps after last term's modules, interests, goals
    (once set), track balance and retakes; ineligible modules (passed, not offered, prerequisites
    unmet, level too high) score -inf.
    """
    collected: list[_Choices] = []
    for state in states:
        active_rows = np.flatnonzero(status[state.students] == ACTIVE)
        k = len(state.cat)
        chunk_rows = max(256, CHUNK_CELLS // max(k, 1))
        # per stage (MAX_STAGE × K): plan affinity plus peers, and what the stage may take this term
        stage_score = state.plan + W_PEER * state.peer
        stage_allowed = state.offered[term][None, :] & (
            state.level[None, :] <= np.minimum(4, np.arange(MAX_STAGE) // 2 + 2)[:, None]
        )
        # interests, goals and track deficits in one product: (n × F) @ (F × K)
        student_weights = np.vstack(
            [W_INTEREST * state.domain_mix_t, W_GOAL * state.goal_fit, W_TRACK * state.track_onehot]
        ).astype(np.float32)
        for start in range(0, len(active_rows), chunk_rows):
            rows = active_rows[start : start + chunk_rows]
            who = state.students[rows]
            n = len(rows)
            stage = np.minimum(term - students.entry[who], MAX_STAGE - 1)
            best = state.best[rows]
            passed = best >= state.pass_grade[None, :]
            eligible = stage_allowed[stage]
            eligible &= ~passed
            if state.n_groups:
                satisfied = best[:, state.prereq_cols] >= state.prereq_threshold[None, :]
                groups_met = np.zeros((n, state.n_groups), dtype=bool)
                for prereq_rows, groups in state.row_passes:
                    groups_met[:, groups] |= satisfied[:, prereq_rows]
                for groups, columns in state.group_passes:
                    eligible[:, columns] &= groups_met[:, groups]

            goal_active = (students.goal_set[who] <= term).astype(np.float32)
            progress = np.minimum(earned[who] / 60.0, 1.0)
            share = track_credits[who] / np.maximum(earned[who], 1.0)[:, None]
            deficit = (state.targets[None, :] - share) * progress[:, None]
            features = np.hstack(
                [students.interest[who], students.goals[who] * goal_active[:, None], deficit]
            ).astype(np.float32)
            score = features @ student_weights
            score += stage_score[stage]
            if students.route_bias is not None:
                score += students.route_bias[students.route[who]] @ state.track_onehot
            position = np.full(len(state.students), -1)
            position[rows] = np.arange(n)
            in_chunk = position[state.last_rows]
            keep = in_chunk >= 0
            if keep.any():
                last = sp.csr_matrix(
                    (np.ones(int(keep.sum()), dtype=np.float32), (in_chunk[keep], state.last_cols[keep])),
                    shape=(n, k),
                )
                successor = np.asarray(last @ state.successor, dtype=np.float32)
                np.minimum(successor, 1.0, out=successor)
                successor *= W_SUCCESSOR
                score += successor
            score += ((best >= 0) & ~passed).astype(np.float32) * np.float32(W_RETAKE)
            # Gumbel noise as -log(Exp(1)): float32 throughout, one log per cell
            noise = rng.standard_exponential(size=score.shape, dtype=np.float32)
            np.maximum(noise, np.float32(1e-30), out=noise)
            np.log(noise, out=noise)
            score -= noise
            np.copyto(score, np.float32(-np.inf), where=~eligible)

            # Greedy fill in score order: scanning the best candidates and taking each that still
            # fits the credit budget equals repeated "best fitting module" picks, as budgets only shrink.
            shortlist = min(CANDIDATES_PER_STUDENT, k)
            top = np.argpartition(score, k - shortlist, axis=1)[:, k - shortlist :]
            top_values = np.take_along_axis(score, top, axis=1)
            by_value = np.argsort(-top_values, axis=1, kind="stable")
            top = np.take_along_axis(top, by_value, axis=1)
            top_values = np.take_along_axis(top_values, by_value, axis=1)
            budget = students.cap[who].astype(np.float32)
            everyone = np.arange(n)
            picked_rows, picked_cols, picked_values = [], [], []
            for j in range(shortlist):
                c = top[:, j]
                ok = np.isfinite(top_values[:, j]) & (state.credits[c] <= budget)
                if not ok.any():
                    continue
                picked_rows.append(everyone[ok])
                picked_cols.append(c[ok])
                picked_values.append(top_values[ok, j])
                budget[ok] -= state.credits[c[ok]]
            if not picked_rows:
                continue
            r, c = np.concatenate(picked_rows), np.concatenate(picked_cols)
            g = who[r]
            fit = np.einsum("ij,ji->i", students.ability[g], state.domain_mix_t[:, c])
            motivation = np.einsum("ij,ji->i", students.goals[g], state.goal_fit[:, c])
            collected.append(
                _Choices(
                    student=g,
                    module=state.cat[c],
                    program=np.full(len(r), state.index),
                    row=rows[r],
                    col=c,
                    stage=stage[r],
                    priority=np.concatenate(picked_values),
                    fit=(fit + 0.3 * np.minimum(motivation, 1.5)).astype(np.float32),
                )
            )
    if not collected:
        empty = np.zeros(0, dtype=int)
        return _Choices(empty, empty, empty, empty, empty, empty, np.zeros(0), np.zeros(0))
    return _Choices(
        **{
            name: np.concatenate([getattr(c, name) for c in collected])
            for name in _Choices.__dataclass_fields__
        }
    )


def _apply_capacity(choices: _Choices, capacity: np.ndarray) -> np.ndarray:
    """Keep at most ``capacity[module]`` enrolments per module, the highest priorities first.

    Returns a bool mask over the choices. Students who lose a seat simply take fewer modules.
    """
    order = np.lexsort((-choices.priority, choices.module))
    modules = choices.module[order]
    starts = np.searchsorted(modules, modules, side="left")
    rank = np.arange(len(order)) - starts
    keep = np.zeros(len(order), dtype=bool)
    keep[order] = rank < capacity[modules]
    return keep


def _grade(
    choices: _Choices, catalog: _Catalog, students: _Students, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes from ability against difficulty: status codes (ENROLLMENT_STATUS) and grades.

    Expected grade = 71 + 7 (ability·module domains + goal motivation - difficulty) + 3.5 practical
    on vocational/project modules + experience; a normal draw (sd 9) on top, clipped to 0-100 and
    rounded. Students likely to do badly withdraw more often (grade NaN).
    """
    modules = choices.module
    applied = catalog.track[modules] != 0
    expected = (
        71.0
        + 7.0 * (choices.fit - catalog.difficulty[modules])
        + 3.5 * students.practical[choices.student] * applied
        + 0.6 * np.minimum(choices.stage, 6)
    )
    grade = np.clip(np.round(expected + rng.normal(0, 9.0, len(modules))), 0, 100)
    withdraw_chance = 0.01 + 0.15 / (1.0 + np.exp((expected - 52.0) / 4.0))
    withdrawn = rng.random(len(modules)) < withdraw_chance
    failed = grade < catalog.pass_grade[modules]
    status = np.where(withdrawn, 2, np.where(failed, 1, 0))
    return status, np.where(withdrawn, np.nan, grade)


def _update_records(
    term: int,
    states: list[_ProgramState],
    choices: _Choices,
    outcome: np.ndarray,
    grades: np.ndarray,
    status: np.ndarray,
    entry: np.ndarray,
    catalog: _Catalog,
    earned: np.ndarray,
    track_credits: np.ndarray,
) -> None:
    """Fold one term's outcomes into best grades, last-term passes, credits and peer shares."""
    n = len(earned)
    passed = outcome == 0
    credits = catalog.credits[choices.module].astype(np.float32)
    earned += np.bincount(choices.student[passed], weights=credits[passed], minlength=n).astype(np.float32)
    for t in range(3):
        on_track = passed & (catalog.track[choices.module] == t)
        track_credits[:, t] += np.bincount(
            choices.student[on_track], weights=credits[on_track], minlength=n
        ).astype(np.float32)
    order = np.argsort(choices.program, kind="stable")
    bounds = np.searchsorted(choices.program[order], np.arange(len(states) + 1))
    for state in states:
        part = order[bounds[state.index] : bounds[state.index + 1]]
        rows, cols = choices.row[part], choices.col[part]
        graded = ~np.isnan(grades[part])
        g_rows, g_cols = rows[graded], cols[graded]
        state.best[g_rows, g_cols] = np.maximum(
            state.best[g_rows, g_cols], grades[part][graded].astype(np.int8)
        )
        ok = passed[part]
        state.last_rows, state.last_cols = rows[ok], cols[ok]
        # peers: the share of the program's active students at each stage who took each module
        k = len(state.cat)
        active = state.students[status[state.students] == ACTIVE]
        stage_of_active = np.minimum(term - entry[active], MAX_STAGE - 1)
        at_stage = np.bincount(stage_of_active, minlength=MAX_STAGE).astype(np.float32)
        took = np.bincount(choices.stage[part] * k + cols, minlength=MAX_STAGE * k).reshape(MAX_STAGE, k)
        seen = at_stage > 0
        share = took[seen] / at_stage[seen, None]
        state.peer[seen] = 0.5 * state.peer[seen] + 0.5 * share.astype(np.float32)


def _progress_students(
    choices: _Choices,
    outcome: np.ndarray,
    status: np.ndarray,
    earned: np.ndarray,
    to_graduate: np.ndarray,
    idle_terms: np.ndarray,
    students: _Students,
    term: int,
    max_terms: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """After a term: graduate who has the credits, drop out some who struggle, stop out the stuck."""
    n = len(status)
    fails = np.bincount(choices.student[outcome == 1], minlength=n)
    withdrawals = np.bincount(choices.student[outcome == 2], minlength=n)
    enrolled = np.bincount(choices.student, minlength=n) > 0
    active = status == ACTIVE
    idle_terms[active & enrolled] = 0
    idle_terms[active & ~enrolled] += 1
    graduating = active & (earned >= to_graduate)
    status[graduating] = GRADUATED
    hazard = np.minimum(0.6, 0.006 + 0.04 * fails + 0.03 * withdrawals)
    leaving = (status == ACTIVE) & (rng.random(n) < hazard)
    stuck = (status == ACTIVE) & ((idle_terms >= 3) | (term - students.entry >= max_terms))
    status[leaving | stuck] = DROPPED


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def _assemble(
    taxonomy: _Taxonomy,
    terms: _Terms,
    market: _Market,
    programs: list[_Program],
    catalog: _Catalog,
    students: _Students,
    enrollments: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """The CSV frames, keyed by file name, with exactly the columns of records/csv_formats.py."""
    module_ids = np.asarray([f"M{i + 1:04d}" for i in range(catalog.size)], dtype=object)
    width = max(5, len(str(students.size)))
    student_ids = np.asarray([f"S{i + 1:0{width}d}" for i in range(students.size)], dtype=object)
    term_codes = np.asarray(terms.codes, dtype=object)
    competency_ids = np.asarray(taxonomy.ids, dtype=object)
    occupation_ids = np.asarray(market.occupation_codes, dtype=object)
    program_ids = np.asarray([p.id for p in programs], dtype=object)
    advisor_ids = students.advisors["id"].to_numpy(dtype=object)

    tables: dict[str, pd.DataFrame] = {}
    tables["terms.csv"] = pd.DataFrame(
        {"code": terms.codes, "ordinal": np.arange(1, len(terms.codes) + 1), "starts_on": terms.starts_on}
    )
    tables["competencies.csv"] = pd.DataFrame(
        {
            "id": competency_ids,
            "name": taxonomy.names,
            "kind": taxonomy.kinds,
            "domain": [DOMAINS[d][0] for d in taxonomy.domain_of],
            "description": [taxonomy.description(i) for i in range(len(taxonomy.names))],
        }
    )
    tables["occupations.csv"] = pd.DataFrame(
        {"id": occupation_ids, "title": market.titles, "description": market.descriptions}
    )
    occ, comp = np.nonzero(market.importance)
    tables["occupation_competencies.csv"] = pd.DataFrame(
        {
            "occupation_id": occupation_ids[occ],
            "competency_id": competency_ids[comp],
            "importance": market.importance[occ, comp].astype(float).round(2),
            "level": market.level[occ, comp].astype(float).round(1),
        }
    )
    tables["demand.csv"] = market.demand
    assert catalog.capacity is not None
    tables["modules.csv"] = pd.DataFrame(
        {
            "id": module_ids,
            "code": catalog.code,
            "title": catalog.title,
            "description": catalog.description,
            "track": np.asarray(TRACKS, dtype=object)[catalog.track],
            "department": catalog.department,
            "level": catalog.level.astype(np.int64),
            "credits": catalog.credits.astype(np.int64),
            "delivery": np.asarray(DELIVERY, dtype=object)[catalog.delivery],
            "capacity": catalog.capacity.astype(np.int64),
            "pass_grade": catalog.pass_grade.astype(float),
        }
    )
    weights = catalog.competencies.tocoo()
    levels = catalog.competency_level.tocoo()
    tables["module_competencies.csv"] = pd.DataFrame(
        {
            "module_id": module_ids[weights.row],
            "competency_id": competency_ids[weights.col],
            "weight": weights.data.astype(float).round(2),
            "level": levels.data.astype(np.int64),
        }
    )
    prereq = catalog.prerequisites
    tables["prerequisites.csv"] = pd.DataFrame(
        {
            "module_id": module_ids[prereq["module"].to_numpy(dtype=int)],
            "group": prereq["group"].to_numpy(dtype=np.int64),
            "requires_module_id": module_ids[prereq["requires"].to_numpy(dtype=int)],
            "min_grade": prereq["min_grade"].to_numpy(dtype=float),
        }
    )
    term_index = np.arange(len(terms.codes))
    offered = ((catalog.parity[:, None] == 2) | (catalog.parity[:, None] == term_index[None, :] % 2)) & (
        term_index[None, :] // 2 >= catalog.first_year[:, None]
    )
    off_module, off_term = np.nonzero(offered)
    tables["offerings.csv"] = pd.DataFrame(
        {"module_id": module_ids[off_module], "term": term_codes[off_term]}
    )
    tables["programs.csv"] = pd.DataFrame(
        {
            "id": program_ids,
            "name": [p.name for p in programs],
            "department": [p.department for p in programs],
            "credits_to_graduate": [p.credits_to_graduate for p in programs],
            "target_academic": [p.targets[0] for p in programs],
            "target_vocational": [p.targets[1] for p in programs],
            "target_project": [p.targets[2] for p in programs],
        }
    )
    tables["program_occupations.csv"] = pd.DataFrame(
        [(p.id, code) for p in programs for code in p.occupations], columns=["program_id", "occupation_id"]
    )
    required_rows = []
    for p in programs:
        assert p.catalogue is not None and p.required is not None
        required_rows += [(p.id, module_ids[m]) for m in p.catalogue[p.required]]
    tables["program_modules.csv"] = pd.DataFrame(required_rows, columns=["program_id", "module_id"])
    tables["advisors.csv"] = students.advisors
    assert students.status is not None
    tables["students.csv"] = pd.DataFrame(
        {
            "id": student_ids,
            "program_id": program_ids[students.program],
            "entry_term": term_codes[students.entry],
            "entry_route": np.asarray(ROUTES, dtype=object)[students.route],
            "advisor_id": advisor_ids[students.advisor],
            "max_credits_per_term": students.cap.astype(np.int64),
            "status": np.asarray(STUDENT_STATUS, dtype=object)[students.status],
        }
    )
    attributes = students.attributes
    tables["student_attributes.csv"] = pd.DataFrame(
        {
            "student_id": student_ids[attributes["student"].to_numpy(dtype=int)],
            "name": attributes["name"].to_numpy(dtype=object),
            "value": attributes["value"].to_numpy(dtype=object),
        }
    ).sort_values(["student_id", "name"], ignore_index=True)
    order = np.lexsort(
        (enrollments["module"].to_numpy(), enrollments["student"].to_numpy(), enrollments["term"])
    )
    enrollments = enrollments.iloc[order]
    tables["enrollments.csv"] = pd.DataFrame(
        {
            "student_id": student_ids[enrollments["student"].to_numpy()],
            "module_id": module_ids[enrollments["module"].to_numpy()],
            "term": term_codes[enrollments["term"].to_numpy()],
            "status": np.asarray(ENROLLMENT_STATUS, dtype=object)[enrollments["status"].to_numpy()],
            "grade": enrollments["grade"].to_numpy(dtype=float),
        }
    )
    goal_student, goal_occ = np.nonzero(students.goals)
    goal_set = students.goal_set[goal_student]
    tables["goals.csv"] = pd.DataFrame(
        {
            "student_id": student_ids[goal_student],
            "occupation_id": occupation_ids[goal_occ],
            "weight": students.goals[goal_student, goal_occ].astype(float).round(2),
            "set_term": np.where(goal_set >= 0, term_codes[np.maximum(goal_set, 0)], None),
        }
    )
    for name, frame in tables.items():
        expected = [c for c in CSV_BY_NAME[name].columns if c != "enrolled_on"]  # terms, not dates
        assert list(frame.columns) == expected, f"{name}: {list(frame.columns)} != {expected}"
    return {f.name: tables[f.name] for f in CSV_FILES}
