"""schemathesis against /openapi.json: generated requests (valid and invalid) never get a 5xx or an
answer that breaks the documented schema. Runs on SQLite with a real model loaded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case
from schemathesis.generation import GenerationMode

from records.db import make_engine, upgrade
from records.settings import get_settings
from service.app import create_app
from tests.e2e.conftest import auth
from tests.e2e.live_fixtures import LiveWorld, TrainedModel, build_live_world


@pytest.fixture
def fuzz_target(
    sqlite_url: str, tmp_path: Path, trained: TrainedModel
) -> Iterator[tuple[FastAPI, LiveWorld]]:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    settings_ = get_settings(
        database_url=sqlite_url, artifacts_dir=tmp_path / "models", reports_dir=tmp_path / "reports"
    )
    world = build_live_world(engine, trained, settings_.artifacts_dir)
    app = create_app(settings_, model_check_interval_s=3600)
    with TestClient(app):  # runs the lifespan: engine, model holder
        yield app, world
    engine.dispose()


def test_no_server_errors_and_schema_conformance(fuzz_target: tuple[FastAPI, LiveWorld]) -> None:
    """Every operation, positive and negative generated cases, as admin and as a student."""
    app, world = fuzz_target
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for role in ("admin", "student"):
                run = _fuzz(operation, mode, auth(world.tokens[role]))
                try:
                    run()
                except Unsatisfiable:
                    # Nothing to make invalid: the operation takes no parameters and no body.
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except (
                    Exception,
                    BaseExceptionGroup,
                ) as exc:  # collect every operation's failure, then report them all
                    failures.append(f"{operation.label} [{mode.value}, {role}]: {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> Callable[[], None]:
    """A hypothesis test calling ``operation`` with generated cases and validating each answer."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=8,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Case) -> None:
        case.call_and_validate(headers=headers)

    return run  # type: ignore[no-any-return]
