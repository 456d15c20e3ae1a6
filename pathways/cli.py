"""The ``pathways`` command line (Typer). Every command exits non-zero with a one-line reason on error.

Commands only parse arguments, call one function of the layer that owns the work, and print; they
hold no logic of their own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from pathways.logging import configure_logging
from pathways.settings import Settings, get_settings

app = typer.Typer(name="pathways", help="Learning-pathway recommendations.", no_args_is_help=True)
db_app = typer.Typer(help="Create or migrate the database.", no_args_is_help=True)
models_app = typer.Typer(help="List, promote and roll back model versions.", no_args_is_help=True)
users_app = typer.Typer(help="Users and their bearer tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(users_app, name="users")

console = Console()
err_console = Console(stderr=True)
log = logging.getLogger(__name__)


def fail(reason: str, code: int = 1) -> NoReturn:
    """Print a one-line reason on stderr and exit non-zero."""
    err_console.print(f"error: {reason}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def not_available(what: str) -> NoReturn:
    fail(f"{what} is not available yet", code=2)


def _settings() -> Settings:
    settings = get_settings()
    configure_logging(settings.log_level)
    return settings


def _engine(settings: Settings, upgrade: bool = True):  # type: ignore[no-untyped-def]
    from records.db import make_engine
    from records.db import upgrade as upgrade_db

    if upgrade:
        upgrade_db(settings.database_url)
    return make_engine(settings.database_url)


# ---------------------------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Create or migrate the database (Alembic) at PATHWAYS_DATABASE_URL."""
    from records.db import upgrade

    settings = _settings()
    try:
        upgrade(settings.database_url, revision)
    except Exception as exc:
        fail(f"database upgrade failed: {exc}")
    console.print(f"database at revision {revision}")


# ---------------------------------------------------------------------------------------------
# Records: generate and import
# ---------------------------------------------------------------------------------------------


@app.command()
def generate(
    size: Annotated[str, typer.Option(help="tiny, small, medium or large")] = "small",
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same institution")] = 7,
    out: Annotated[Path | None, typer.Option(help="write a CSV set into this folder instead")] = None,
    regime: Annotated[
        str, typer.Option(help="term (a university, by terms) or online (a dated log, one module at a time)")
    ] = "term",
    route_skew: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="0-1: sort entry routes into programs of their kind and draw each route to its usual "
            "track (an institution an equity audit must catch); 0 = the usual institution",
        ),
    ] = 0.0,
) -> None:
    """Generate a synthetic institution into the database, or as a CSV set with --out."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from records.synthetic import SIZES
    from records.synthetic import generate as generate_institution
    from records.synthetic_online import generate_online

    if regime not in ("term", "online"):
        fail(f"unknown regime {regime!r}; choose term or online")
    if size not in SIZES:
        fail(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if regime == "online" and route_skew > 0:
        fail("--route-skew applies to the term regime only")
    settings = _settings()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err_console
    ) as progress:
        task = progress.add_task(f"generating a {size} institution (seed {seed})", total=1.0)

        def report(message: str, fraction: float) -> None:
            progress.update(task, description=message, completed=fraction)

        if regime == "online":
            tables = generate_online(size, seed, progress=report)
        else:
            tables = generate_institution(size, seed, progress=report, route_skew=route_skew)
    if out is not None:
        from records.synthetic import write_csv_set

        with console.status(f"writing the CSV set to {out}"):
            rows = write_csv_set(tables, out)
        for name, count in rows.items():
            console.print(f"{name}: {count} rows", markup=False, highlight=False)
        console.print(f"wrote {len(rows)} files to {out}", markup=False)
        return

    from pathways.import_display import print_import_report, print_rejections
    from records.ingest import ImportRejected, import_tables

    engine = _engine(settings)
    try:
        with console.status("writing the institution into the database"):
            import_report = import_tables(engine, tables)
    except ImportRejected as rejected:
        print_rejections(err_console, rejected.rejections, rejected.notes)
        fail(f"generated institution rejected, nothing written: {len(rejected.rejections)} problem(s)")
    print_import_report(console, import_report, title=f"Generated {size} {regime} institution (seed {seed})")


@app.command("import")
def import_csv(
    directory: Annotated[Path, typer.Argument(help="folder holding the CSV set (data/README.md)")],
    allow_uncatalogued: Annotated[
        bool, typer.Option(help="create unknown students and modules found in enrollments.csv")
    ] = False,
    term_window: Annotated[
        str, typer.Option(help="month, week or quarter: the terms a dated log without terms is cut into")
    ] = "month",
) -> None:
    """Import a CSV set atomically: every row or none, with a report of every rejected row."""
    from pathways.import_display import print_import_report, print_rejections
    from records.ingest import ImportRejected, import_directory
    from records.terms import TERM_WINDOWS

    if term_window not in TERM_WINDOWS:
        fail(f"unknown term window {term_window!r}; choose one of {', '.join(TERM_WINDOWS)}")

    if directory.is_file():
        fail(
            f"{directory} is a file: pathways import needs the folder that holds the CSV set "
            f"({directory.parent})"
        )
    if not directory.is_dir():
        fail(f"no such folder: {directory}")
    engine = _engine(_settings())
    try:
        report = import_directory(
            engine, directory, allow_uncatalogued=allow_uncatalogued, term_window=term_window
        )
    except ImportRejected as rejected:
        print_rejections(err_console, rejected.rejections, rejected.notes)
        fail(f"import rejected, nothing written: {len(rejected.rejections)} problem(s) in {directory}")
    print_import_report(console, report, title=f"Import of {directory}")


@app.command("import-onet")
def import_onet(
    directory: Annotated[Path, typer.Argument(help="folder holding O*NET database text files")],
) -> None:
    """Import occupations and competencies from the O*NET database text release."""
    from pathways.import_display import print_import_report, print_rejections
    from records.ingest import ImportRejected
    from records.onet import import_onet_directory

    if directory.is_file():
        fail(
            f"{directory} is a file: pathways import-onet needs the folder of O*NET text files "
            f"({directory.parent})"
        )
    engine = _engine(_settings())
    try:
        report = import_onet_directory(engine, directory)
    except ImportRejected as rejected:
        print_rejections(err_console, rejected.rejections, rejected.notes)
        fail(f"O*NET import rejected, nothing written: {len(rejected.rejections)} problem(s) in {directory}")
    print_import_report(console, report, title=f"O*NET import of {directory}")


# ---------------------------------------------------------------------------------------------
# Training and recommendations
# ---------------------------------------------------------------------------------------------


@app.command()
def train() -> None:
    """The nightly job: fit, evaluate, gate, register, promote, batch-score and flag."""
    from training.display import print_run, train_with_progress
    from training.lock import LockHeldError

    settings = _settings()
    try:
        _engine(settings).dispose()
        result = train_with_progress(settings, console)
    except LockHeldError as exc:
        fail(str(exc))
    except Exception as exc:
        fail(f"training failed: {type(exc).__name__}: {exc}")
    print_run(result, console)


@app.command()
def evaluate(
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Evaluate the hybrid and its baselines on the newest closed term; print the report."""
    import json

    from training.display import print_evaluation
    from training.pipeline import run_evaluation

    settings = _settings()
    try:
        _engine(settings).dispose()
        evaluation = run_evaluation(settings)
    except Exception as exc:
        fail(f"evaluation failed: {type(exc).__name__}: {exc}")
    if json_output:
        print(json.dumps(evaluation, sort_keys=False))
    else:
        print_evaluation(evaluation, console)


@app.command()
def recommend(
    student_id: Annotated[str, typer.Argument()],
    term: Annotated[str | None, typer.Option(help="target term code; default the next term")] = None,
    k: Annotated[int, typer.Option(min=1, max=50)] = 10,
    occupation: Annotated[str | None, typer.Option(help="what-if: aim at this occupation")] = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print a student's next-term recommendations with their explanations."""
    import json

    import numpy as np

    from features.build import build_term_context
    from recommender.explain import explanation_records
    from records.db import promoted_version, session_scope
    from records.frames import load_term_state, next_term
    from training.registry import load_model_of

    engine = _engine(_settings())
    with session_scope(engine) as session:
        version = promoted_version(session)
        if version is None:
            fail("no promoted model: run pathways train")
        try:
            model = load_model_of(version)
        except (OSError, ValueError) as exc:
            fail(f"promoted model {version.version} cannot be loaded: {exc}")
    fs = model.fs_
    if student_id not in fs.students:
        fail(f"unknown student {student_id!r}: not in the records of model {version.version}")
    target_term = term if term is not None else next_term(engine, fs.cutoff_term)
    try:
        state = load_term_state(engine, target_term, cutoff_term=fs.cutoff_term)
        context = build_term_context(fs, state)
        rows = np.array([fs.students.row(student_id)], dtype=np.int64)
        lists = model.recommend(rows, context, k=k, occupation=occupation)
        items = explanation_records(model, model.explain(lists, context, occupation)[0])
    except ValueError as exc:
        fail(str(exc))
    if json_output:
        answer = {
            "student_id": student_id,
            "term": context.target_term,
            "occupation": occupation,
            "model_version": version.version,
            "items": items,
        }
        print(json.dumps(answer, indent=2, default=float))
        return
    from rich.table import Table

    heading = f"{student_id}: next term {context.target_term or '(any)'}, model {version.version}"
    table = Table(title=heading + (f", aiming at {occupation}" if occupation else ""))
    for column in ("#", "module", "title", "track", "score", "expected grade", "risk"):
        table.add_column(column)
    for item in items:
        risk = item["risk_level"]
        if item["fail_probability"] is not None:
            risk += f" ({item['fail_probability']:.0%} fail)"
        grade = item["expected_grade"]
        table.add_row(
            str(item["rank"]),
            item["module_id"],
            item["title"] or "",
            item["track"] or "",
            f"{item['score']:.2f}",
            "" if grade is None else f"{grade:.0f}",
            risk,
        )
    console.print(table)
    for item in items:
        console.print(f"{item['rank']}. {item['module_id']}", markup=False, highlight=False)
        for reason in item["reasons"]:
            console.print(f"   - {reason}", markup=False, highlight=False)
    if not items:
        console.print("no eligible module in that term")


@app.command("export-recommendations")
def export_recommendations(out: Annotated[Path, typer.Option(help="CSV file to write")]) -> None:
    """Write student_id,rank,module_id,score from the promoted model's latest batch."""
    from training.batch import BatchError, export_current_batch

    engine = _engine(_settings())
    try:
        batch_id, rows = export_current_batch(engine, out)
    except (BatchError, OSError) as exc:
        fail(str(exc))
    console.print(f"wrote {rows} recommendations of batch {batch_id} to {out}", markup=False, highlight=False)


@models_app.command("list")
def models_list() -> None:
    """List model versions with their metrics and which one is promoted."""
    from records.db import session_scope
    from training.display import print_versions
    from training.registry import list_versions

    engine = _engine(_settings())
    with session_scope(engine) as session:
        print_versions(list_versions(session), console)


@models_app.command("promote")
def models_promote(version: str) -> None:
    """Promote VERSION (one atomic step)."""
    from records.db import session_scope
    from training.registry import RegistryError, promote

    engine = _engine(_settings())
    try:
        with session_scope(engine) as session:
            promotion = promote(session, version, actor="cli")
            previous = promotion.previous_version
    except RegistryError as exc:
        fail(str(exc))
    console.print(f"promoted {version} (was {previous})", markup=False, highlight=False)


@models_app.command("rollback")
def models_rollback() -> None:
    """Promote the version that was promoted before the current one."""
    from records.db import session_scope
    from training.registry import RegistryError, rollback

    engine = _engine(_settings())
    try:
        with session_scope(engine) as session:
            promotion = rollback(session, actor="cli")
            version, previous = promotion.version, promotion.previous_version
    except RegistryError as exc:
        fail(str(exc))
    console.print(f"rolled back to {version} (was {previous})", markup=False, highlight=False)


# ---------------------------------------------------------------------------------------------
# Users and the service
# ---------------------------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[str, typer.Option(help="student, advisor or admin")],
    student_id: Annotated[str | None, typer.Option(help="the student this user is")] = None,
    advisor_id: Annotated[str | None, typer.Option(help="the advisor this user is")] = None,
) -> None:
    """Create a user; the new token is the last line of output."""
    from records.db import session_scope
    from records.users import UserError, add_user

    engine = _engine(_settings())
    try:
        with session_scope(engine) as session:
            user, token = add_user(session, name, role, student_id=student_id, advisor_id=advisor_id)
            console.print(f"created {user.role} user {user.name}", markup=False)
    except UserError as exc:
        fail(str(exc))
    print(token)


@users_app.command("token")
def users_token(name: str) -> None:
    """Issue a new token for NAME (the old one stops working); the token is the last line of output."""
    from records.db import session_scope
    from records.users import UserError, rotate_token

    engine = _engine(_settings())
    try:
        with session_scope(engine) as session:
            token = rotate_token(session, name)
    except UserError as exc:
        fail(str(exc))
    print(token)


@users_app.command("deactivate")
def users_deactivate(name: str) -> None:
    """Revoke NAME: their token stops working and their page sessions end at once."""
    from records.db import session_scope
    from records.users import UserError, deactivate_user

    engine = _engine(_settings())
    try:
        with session_scope(engine) as session:
            user = deactivate_user(session, name)
            console.print(f"deactivated {user.role} user {user.name}", markup=False)
    except UserError as exc:
        fail(str(exc))


@users_app.command("list")
def users_list(
    json_output: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Every user with role, state, token expiry and last use (times in UTC)."""
    import datetime as dt
    import json

    from records.db import session_scope
    from records.users import list_users, utc_now

    settings = _settings()
    engine = _engine(settings)
    with session_scope(engine) as session:
        listings = list_users(session, settings.token_ttl)
    now = utc_now()

    def when(moment: dt.datetime | None) -> str | None:
        return moment.isoformat(timespec="seconds") if moment is not None else None

    rows = [
        {
            "name": user.name,
            "role": user.role,
            "student_id": user.student_id,
            "advisor_id": user.advisor_id,
            "state": user.state(now),
            "token_expires_at": when(user.token_expires_at),
            "last_used_at": when(user.last_used_at),
        }
        for user in listings
    ]
    if json_output:
        print(json.dumps(rows))
        return
    print("name\trole\tstate\ttoken_expires_at\tlast_used_at")
    for row in rows:
        print(
            f"{row['name']}\t{row['role']}\t{row['state']}\t"
            f"{row['token_expires_at'] or 'never'}\t{row['last_used_at'] or 'never'}"
        )


@app.command()
def serve() -> None:
    """Serve the HTTP API and pages on PATHWAYS_HOST:PATHWAYS_PORT."""
    import uvicorn

    from records.db import upgrade
    from service.app import create_app

    settings = _settings()
    try:
        upgrade(settings.database_url)
    except Exception as exc:
        fail(f"database upgrade failed: {exc}")
    console.print(f"serving on http://{settings.host}:{settings.port}", markup=False)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        workers=1,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


@app.command()
def demo(
    size: Annotated[str, typer.Option(help="institution size")] = "small",
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """The main job: create the database, generate an institution, train, and serve with demo tokens."""
    from pathways.demo import demo_accounts, has_students
    from records.db import promoted_version, session_scope

    settings = _settings()
    engine = _engine(settings)
    with session_scope(engine) as session:
        populated = has_students(session)
        trained = promoted_version(session) is not None
    if populated:
        console.print("the database already holds an institution: generation skipped", markup=False)
    else:
        generate(size=size, seed=seed, out=None)
    if trained:
        console.print("a model is already promoted: training skipped (run `pathways train` to retrain)")
    else:
        train()
    with session_scope(engine) as session:
        accounts = demo_accounts(session)
    engine.dispose()
    base = f"http://{settings.host}:{settings.port}"
    console.print("\nDemo accounts: sign in on the page with the token (or send it as a bearer token)")
    for account in accounts:
        console.print(f"\n{account.role} ({account.detail}): {base}{account.page}", markup=False)
        print(f"  token: {account.token}")
    console.print(f"\nAPI documentation: {base}/docs\n", markup=False)
    serve()


if __name__ == "__main__":
    app()
