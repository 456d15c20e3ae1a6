"""Every id in the OpenAPI examples names a record of the demo institution (`pathways demo`: the small
synthetic institution, seed 7), so that "Try it out" on /docs works against the demo (issue 12 point 9)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from records.settings import get_settings
from records.synthetic import generate
from service.app import create_app

ID_PATTERNS = {
    "modules.csv": re.compile(r"^M\d{4}$"),
    "students.csv": re.compile(r"^S\d{5,}$"),
    "occupations.csv": re.compile(r"^\d{2}-\d{4}\.\d{2}$"),
    "terms.csv": re.compile(r"^\d{4}-\d$"),
    "advisors.csv": re.compile(r"^A\d{4}$"),
    "programs.csv": re.compile(r"^P\d{2}$"),
}


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    return generate(size="small", seed=7)


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return create_app(get_settings(database_url="sqlite://")).openapi()


def _examples(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """(location, example value) for every ``example``/``examples`` in the document, recursively."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "examples" and isinstance(value, list):
                for example in value:
                    yield from _values(example, where)
            elif key == "example":
                yield from _values(value, where)
            else:
                yield from _examples(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _examples(value, f"{where}/{index}")


def _values(example: Any, where: str) -> Iterator[tuple[str, Any]]:
    if isinstance(example, dict):
        for value in example.values():
            yield from _values(value, where)
    elif isinstance(example, list):
        for value in example:
            yield from _values(value, where)
    else:
        yield where, example


def test_example_ids_exist_in_the_demo_institution(demo: dict[str, Any], openapi: dict[str, Any]) -> None:
    known = {
        name: set(demo[name]["code" if name == "terms.csv" else "id"].astype(str)) for name in ID_PATTERNS
    }
    checked: list[str] = []
    missing: list[str] = []
    for where, value in _examples(openapi):
        if not isinstance(value, str):
            continue
        for name, pattern in ID_PATTERNS.items():
            if pattern.match(value):
                checked.append(value)
                if value not in known[name]:
                    missing.append(f"{where}: {value!r} is not in the demo's {name}")
    assert not missing, "\n".join(missing)
    # Modules, students, occupations and terms all appear among the examples.
    assert {"M0042", "M0029", "M0038", "S00578", "15-2051.00", "2026-1"} <= set(checked)


FIELD_TABLES = {
    "module_id": "modules.csv",
    "replacement_module_id": "modules.csv",
    "student_id": "students.csv",
    "occupation": "occupations.csv",
    "occupation_id": "occupations.csv",
    "term": "terms.csv",
    "target_term": "terms.csv",
}


def test_id_fields_and_parameters_have_demo_examples(demo: dict[str, Any], openapi: dict[str, Any]) -> None:
    """Whatever their spelling, the examples of id fields and id parameters name demo records."""
    known = {
        name: set(demo[name]["code" if name == "terms.csv" else "id"].astype(str)) for name in ID_PATTERNS
    }
    fields: list[tuple[str, str, list[Any]]] = []
    for schema_name, schema in openapi["components"]["schemas"].items():
        for field, spec in schema.get("properties", {}).items():
            table = FIELD_TABLES.get(field)
            if field == "id" and schema_name.startswith("Module"):
                table = "modules.csv"
            if field == "id" and schema_name.startswith("Occupation"):
                table = "occupations.csv"
            if table is not None:
                fields.append((f"{schema_name}.{field}", table, spec.get("examples", [])))
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                table = FIELD_TABLES.get(parameter["name"])
                if table is not None:
                    examples = parameter.get("schema", {}).get("examples", []) + parameter.get("examples", [])
                    fields.append((f"{method.upper()} {path} {parameter['name']}", table, examples))
    assert len(fields) >= 8
    wrong = [
        f"{where}: {example!r}"
        for where, table, examples in fields
        for example in examples
        if isinstance(example, str) and example not in known[table]
    ]
    assert not wrong, "examples naming no demo record:\n" + "\n".join(wrong)


def test_module_example_is_one_consistent_demo_module(demo: dict[str, Any], openapi: dict[str, Any]) -> None:
    module = openapi["components"]["schemas"]["ModuleOut"]["properties"]
    row = demo["modules.csv"].set_index("id").loc[module["id"]["examples"][0]]
    assert module["code"]["examples"] == [row["code"]]
    assert module["title"]["examples"] == [row["title"]]
    assert module["track"]["examples"] == [row["track"]]
    assert module["credits"]["examples"] == [float(row["credits"])]


def test_example_student_is_active(demo: dict[str, Any], openapi: dict[str, Any]) -> None:
    students = demo["students.csv"].set_index("id")
    examples = {
        value for where, value in _examples(openapi) if isinstance(value, str) and value.startswith("S00")
    }
    assert examples and all(students.loc[student, "status"] == "active" for student in examples)
