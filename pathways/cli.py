"""The ``pathways`` command line (Typer). Every command exits non-zero with a one-line reason on error.

Commands only parse arguments, call one function of the layer that owns the work, and print; they
hold no logic of their own. Conventions (docs/cli.md; tests in tests/*/pathways/test_cli_conventions.py):
the result goes to standard output (``--json``: one JSON document), logs and progress to standard error;
``pathways -v``/``-q`` set the log level; tables are never cut short in a pipe or a narrow terminal; any
error is one line on standard error (``pathways -v`` shows the traceback of an unexpected one); commands
that only read never create or migrate a database.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from pathways.console import ResultConsole
from pathways.logging import configure_logging, verbosity_level
from pathways.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

Command = TypeVar("Command", bound=Callable[..., Any])


class _App(typer.Typer):
    """A Typer app whose commands turn any exception into a one-line error (see :func:`_one_line_errors`).

    The function is registered wrapped and returned unwrapped, so ``demo`` can call other commands and
    let their errors reach its own wrapper.
    """

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Command], Command]:  # type: ignore[override]
        register = super().command(*args, **kwargs)

        def decorator(function: Command) -> Command:
            register(_one_line_errors(function))
            return function

        return decorator


# Plain (click) help: no <bool> tags on flags, wrapped to the terminal instead of cut in boxes.
_APP_OPTIONS: dict[str, Any] = {"no_args_is_help": True, "rich_markup_mode": None}
app = _App(name="pathways", pretty_exceptions_show_locals=False, **_APP_OPTIONS)
db_app = _App(help="Create or migrate the database.", **_APP_OPTIONS)
models_app = _App(help="List, promote and roll back model versions.", **_APP_OPTIONS)
users_app = _App(help="Users and their bearer tokens.", **_APP_OPTIONS)
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(users_app, name="users")

console = ResultConsole()
err_console = Console(stderr=True)
log = logging.getLogger(__name__)

# Set by the root callback for the command that follows (-v / -q).
_verbosity: dict[str, Any] = {"verbose": 0, "quiet": False}


@app.callback()
def main(
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            show_default=False,
            help="log more on standard error (DEBUG); tracebacks of errors",
        ),
    ] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="log only warnings and errors on standard error")
    ] = False,
) -> None:
    """Learning-pathway recommendations: try `pathways demo`; `pathways COMMAND --help` for more.

    Results go to standard output, logs to standard error. The database is PATHWAYS_DATABASE_URL
    (default sqlite:///var/pathways.db; postgresql://, postgres:// and postgresql+psycopg:// URLs work).
    """
    _verbosity.update(verbose=verbose, quiet=quiet)


def fail(reason: str, code: int = 1) -> NoReturn:
    """Print a one-line reason on stderr and exit non-zero."""
    err_console.print(f"error: {reason}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def not_available(what: str) -> NoReturn:
    fail(f"{what} is not available yet", code=2)


def first_line(error: BaseException | None) -> str:
    """The first non-empty line of an error's message (drivers add hints and SQL on later lines)."""
    text = str(error) if error is not None else ""
    return next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)


def _one_line_errors(function: Command) -> Command:
    """Run a command; turn every exception but Typer's own exits into one line on stderr and exit 1."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("typer", "click"):
                raise  # Exit, Abort and usage errors already say what they have to
            _fail_with(exc)

    return run  # type: ignore[return-value]


def _fail_with(exc: Exception) -> NoReturn:
    from pydantic import ValidationError
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    from records.db import DatabaseMissing, DatabaseUrlError, describe_url

    if isinstance(exc, DatabaseUrlError | DatabaseMissing):
        fail(str(exc))
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        problems = "; ".join(
            f"PATHWAYS_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        fail(f"bad setting {problems}")
    if isinstance(exc, OperationalError):
        where = describe_url(get_settings().database_url)
        fail(f"the database at {where} cannot be used: {first_line(exc.orig)}")
    if _verbosity["verbose"]:
        raise exc
    if isinstance(exc, SQLAlchemyError):
        fail(f"database error: {first_line(getattr(exc, 'orig', None) or exc)} (pathways -v for details)")
    fail(f"{type(exc).__name__}: {first_line(exc)} (pathways -v ... shows the traceback)")


def _settings() -> Settings:
    settings = get_settings()
    configure_logging(verbosity_level(_verbosity["verbose"], _verbosity["quiet"], settings.log_level))
    return settings


def _engine(settings: Settings, upgrade: bool = True) -> Engine:
    """An engine for a command that writes: the database is created or migrated first."""
    from records.db import make_engine
    from records.db import upgrade as upgrade_db

    if upgrade:
        upgrade_db(settings.database_url)
    return make_engine(settings.database_url)


def _read_engine(settings: Settings) -> Engine:
    """An engine for a command that only reads: never creates a file, a folder or a table."""
    from records.db import open_existing

    return open_existing(settings.database_url)


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python ones and NaN/inf as null (strict JSON)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy scalar or array
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    """One JSON document on standard output, parseable by ``json.load`` and ``jq`` alike."""
    print(json.dumps(_plain(value), allow_nan=False, default=str))


# ---------------------------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Alembic revision to migrate to")] = "head",
) -> None:
    """Create or migrate the database (Alembic) at PATHWAYS_DATABASE_URL."""
    from records.db import upgrade

    settings = _settings()
    upgrade(settings.database_url, revision)
    console.print(f"database at revision {revision}", markup=False, highlight=False)


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

        with err_console.status(f"writing the CSV set to {out}"):
            rows = write_csv_set(tables, out)
        for name, count in rows.items():
            console.print(f"{name}: {count} rows", markup=False, highlight=False)
        console.print(f"wrote {len(rows)} files to {out}", markup=False)
        return

    from pathways.import_display import print_import_report, print_rejections
    from records.ingest import ImportRejected, import_tables

    engine = _engine(settings)
    try:
        with err_console.status("writing the institution into the database"):
            import_report = import_tables(engine, tables)
    except ImportRejected as rejected:
        print_rejections(err_console, rejected.rejections, rejected.notes)
        fail(f"generated institution rejected, nothing written: {len(rejected.rejections)} problem(s)")
    print_import_report(console, import_report, title=f"Generated {size} {regime} institution (seed {seed})")


@app.command("import")
def import_csv(
    directory: Annotated[Path, typer.Argument(help="folder holding the CSV set (data/README.md)")],
    allow_uncatalogued: Annotated[
        bool,
        typer.Option(
            "--allow-uncatalogued", help="create unknown students and modules found in enrollments.csv"
        ),
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


EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="where the batch's students are scored: 'local' (this process) or 'spark' (PySpark, Java)",
    ),
]
SparkMasterOption = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        help="Spark master URL (local[N], spark://host:7077, yarn, k8s://...); default PATHWAYS_SPARK_MASTER",
    ),
]
SparkConfOption = Annotated[
    list[str] | None,
    typer.Option("--spark-conf", help="a Spark setting key=value, passed through (repeatable)"),
]


def _spark_options(settings: Settings, engine: str, master: str | None, conf: list[str] | None):  # type: ignore[no-untyped-def]
    from training.engines import ENGINES
    from training.spark import SparkOptions, parse_conf

    if engine not in ENGINES:
        fail(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}", code=2)
    try:
        return SparkOptions(master=master or settings.spark_master, conf=parse_conf(conf))
    except ValueError as exc:
        fail(str(exc), code=2)


@app.command()
def train(
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = None,
    spark_conf: SparkConfOption = None,
) -> None:
    """The nightly job: fit, evaluate, gate, register, promote, batch-score and flag."""
    from training.display import print_run, train_with_progress
    from training.lock import LockHeldError
    from training.spark import SparkUnavailable

    settings = _settings()
    spark = _spark_options(settings, engine, spark_master, spark_conf)
    try:
        _engine(settings).dispose()
        result = train_with_progress(settings, err_console, engine_kind=engine, spark=spark)
    except (LockHeldError, SparkUnavailable) as exc:
        fail(str(exc))
    except Exception as exc:
        if _verbosity["verbose"]:
            raise
        fail(f"training failed: {type(exc).__name__}: {first_line(exc)}")
    print_run(result, console)


@app.command()
def rescore(
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = None,
    spark_conf: SparkConfOption = None,
) -> None:
    """Score the active, recently enrolled students again with the promoted model into a new complete
    batch (no refit)."""
    from training.lock import LockHeldError
    from training.rescore import RescoreError, rescore
    from training.scoring import left_out_note
    from training.spark import SparkUnavailable

    settings = _settings()
    spark = _spark_options(settings, engine, spark_master, spark_conf)
    try:
        _engine(settings).dispose()
        result = rescore(settings, engine_kind=engine, spark=spark)
    except (LockHeldError, RescoreError, SparkUnavailable) as exc:
        fail(str(exc))
    except Exception as exc:
        if _verbosity["verbose"]:
            raise
        fail(f"rescore failed: {type(exc).__name__}: {first_line(exc)}")
    console.print(
        f"model {result.version}: batch {result.batch_id} for {result.target_term} "
        f"({result.engine} engine): {result.n_students} students"
        f"{left_out_note(result.n_not_recent, result.within_terms)}, {result.n_recommendations} "
        f"recommendations, {result.n_flags} flags; {result.duration_s:.1f}s",
        highlight=False,
    )


@app.command()
def evaluate(
    json_output: Annotated[
        bool, typer.Option("--json", help="print one JSON object instead of tables")
    ] = False,
) -> None:
    """Evaluate the hybrid and its baselines on the newest closed term; print the report. Writes nothing."""
    from training.display import print_evaluation
    from training.pipeline import run_evaluation

    settings = _settings()
    _read_engine(settings).dispose()
    try:
        evaluation = run_evaluation(settings)
    except Exception as exc:
        if _verbosity["verbose"]:
            raise
        fail(f"evaluation failed: {type(exc).__name__}: {first_line(exc)}")
    if json_output:
        print_json(evaluation)
    else:
        print_evaluation(evaluation, console)


@app.command()
def recommend(
    student_id: Annotated[str, typer.Argument(help="the student's id", metavar="STUDENT_ID")],
    term: Annotated[str | None, typer.Option(help="target term code; default the next term")] = None,
    k: Annotated[int, typer.Option(min=1, max=50, help="how many modules to suggest")] = 10,
    occupation: Annotated[
        str | None,
        typer.Option(
            help="what-if: aim at this occupation, by O*NET code or a fragment of its title "
            "(list them with `pathways occupations --search TEXT`)"
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="print one JSON object instead of a table")
    ] = False,
) -> None:
    """Print a student's next-term recommendations (code, title, credits) with their explanations."""
    import numpy as np

    from features.build import build_term_context
    from recommender.explain import explanation_records
    from records.db import promoted_version, session_scope
    from records.frames import load_term_state, next_term
    from records.occupations import OccupationLookupError, resolve_occupation
    from training.registry import load_model_of

    engine = _read_engine(_settings())
    occupation_id: str | None = None
    occupation_title: str | None = None
    with session_scope(engine) as session:
        if occupation is not None:
            try:
                found = resolve_occupation(session, occupation)
            except OccupationLookupError as exc:
                fail(str(exc))
            occupation_id, occupation_title = found.id, found.title
        version = promoted_version(session)
        if version is None:
            fail("no promoted model: run pathways train")
        try:
            model = load_model_of(version)
        except (OSError, ValueError) as exc:
            fail(f"promoted model {version.version} cannot be loaded: {first_line(exc)}")
    fs = model.fs_
    if student_id not in fs.students:
        fail(f"unknown student {student_id!r}: not in the records of model {version.version}")
    if occupation_id is not None and occupation_id not in fs.occupations:
        fail(
            f"occupation {occupation_id} ({occupation_title}) has no competency profile in model "
            f"{version.version}: choose another with `pathways occupations --search TEXT`"
        )
    target_term = term if term is not None else next_term(engine, fs.cutoff_term)
    try:
        state = load_term_state(engine, target_term, cutoff_term=fs.cutoff_term, taken_since_cutoff=True)
        context = build_term_context(fs, state)
        rows = np.array([fs.students.row(student_id)], dtype=np.int64)
        lists = model.recommend(rows, context, k=k, occupation=occupation_id)
        items = explanation_records(model, model.explain(lists, context, occupation_id)[0])
    except ValueError as exc:
        fail(first_line(exc))
    finally:
        engine.dispose()
    info = fs.module_info
    for item in items:
        row = fs.modules.row(item["module_id"])
        code = info["code"].iat[row]
        item["code"] = code if isinstance(code, str) else None
        credits = info["catalog_credits" if "catalog_credits" in info.columns else "credits"].iat[row]
        item["credits"] = float(credits) if credits == credits else None
    if json_output:
        print_json(
            {
                "student_id": student_id,
                "term": context.target_term,
                "occupation": occupation_id,
                "occupation_title": occupation_title,
                "model_version": version.version,
                "items": items,
            }
        )
        return
    from rich.table import Table

    heading = f"{student_id}: next term {context.target_term or '(any)'}, model {version.version}"
    aiming = f", aiming at {occupation_title} ({occupation_id})" if occupation_id else ""
    table = Table(title=heading + aiming)
    for column in ("#", "code", "title", "track", "credits", "score", "expected grade", "risk"):
        table.add_column(column, justify="right" if column in ("#", "credits", "score") else "left")
    for item in items:
        risk = item["risk_level"]
        if item["fail_probability"] is not None:
            risk += f" ({item['fail_probability']:.0%} fail)"
        grade = item["expected_grade"]
        table.add_row(
            str(item["rank"]),
            item["code"] or item["module_id"],
            item["title"] or "",
            item["track"] or "",
            "" if item["credits"] is None else f"{item['credits']:g}",
            f"{item['score']:.2f}",
            "" if grade is None else f"{grade:.0f}",
            risk,
        )
    console.print(table)
    for item in items:
        label = f"{item['rank']}. {item['code'] or item['module_id']} {item['title'] or ''}".rstrip()
        console.print(label, markup=False, highlight=False)
        for reason in item["reasons"]:
            console.print(f"   - {reason}", markup=False, highlight=False)
    if not items:
        console.print("no eligible module in that term")


@app.command()
def occupations(
    search: Annotated[
        str | None, typer.Option(help="only occupations whose O*NET code or title contains this text")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="show at most this many")] = 50,
    json_output: Annotated[
        bool, typer.Option("--json", help="print one JSON list instead of a table")
    ] = False,
) -> None:
    """List occupations (O*NET code and title), for `pathways recommend --occupation`."""
    from rich.table import Table

    from records.db import session_scope
    from records.occupations import find_occupations

    engine = _read_engine(_settings())
    with session_scope(engine) as session:
        found = [{"id": row.id, "title": row.title} for row in find_occupations(session, search, limit)]
    engine.dispose()
    if json_output:
        print_json(found)
        return
    if not found:
        fail(f"no occupation matches {search!r}" if search else "no occupations in the database")
    table = Table(title=f"occupations matching {search!r}" if search else "occupations")
    table.add_column("code", no_wrap=True)
    table.add_column("title")
    for row in found:
        table.add_row(row["id"], row["title"])
    console.print(table)


@app.command("export-recommendations")
def export_recommendations(out: Annotated[Path, typer.Option(help="CSV file to write")]) -> None:
    """Write student_id,rank,module_id,score from the promoted model's latest batch."""
    from training.batch import BatchError, export_current_batch

    engine = _read_engine(_settings())
    try:
        batch_id, rows = export_current_batch(engine, out)
    except (BatchError, OSError) as exc:
        fail(str(exc))
    console.print(f"wrote {rows} recommendations of batch {batch_id} to {out}", markup=False, highlight=False)


@models_app.command("list")
def models_list(
    json_output: Annotated[
        bool, typer.Option("--json", help="print one JSON list instead of a table")
    ] = False,
) -> None:
    """List model versions with their metrics and which one is promoted."""
    import dataclasses

    from records.db import session_scope
    from training.display import print_versions
    from training.registry import list_versions

    engine = _read_engine(_settings())
    with session_scope(engine) as session:
        versions = list_versions(session)
    engine.dispose()
    if json_output:
        print_json([dataclasses.asdict(version) for version in versions])
    else:
        print_versions(versions, console)


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="the version to promote (see `pathways models list`)")],
) -> None:
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
    name: Annotated[str, typer.Argument(help="the user's name (unique), used to sign in and in audits")],
    role: Annotated[str, typer.Option(help="student, advisor or admin")],
    student_id: Annotated[str | None, typer.Option(help="the student this user is")] = None,
    advisor_id: Annotated[str | None, typer.Option(help="the advisor this user is")] = None,
) -> None:
    """Create a user; the token alone goes to standard output, who it is to standard error."""
    from records.db import session_scope
    from records.users import UserError, add_user

    engine = _engine(_settings())
    try:
        with session_scope(engine) as session:
            user, token = add_user(session, name, role, student_id=student_id, advisor_id=advisor_id)
            err_console.print(f"created {describe_user(user)}", markup=False, highlight=False)
    except UserError as exc:
        fail(str(exc))
    print(token)


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="the user to issue a token for (see `pathways users list`)")],
) -> None:
    """Issue a new token for NAME (the old one stops working).

    The token alone goes to standard output; whose it is (name, role, student or advisor) to standard error.
    """
    from sqlalchemy import select

    from records.db import session_scope
    from records.schema import User
    from records.users import UserError, rotate_token

    engine = _engine(_settings())
    try:
        with session_scope(engine) as session:
            token = rotate_token(session, name)
            user = session.scalars(select(User).where(User.name == name)).one()
            err_console.print(f"new token for {describe_user(user)}", markup=False, highlight=False)
    except UserError as exc:
        fail(str(exc))
    print(token)


@users_app.command("deactivate")
def users_deactivate(
    name: Annotated[str, typer.Argument(help="the user to deactivate (see `pathways users list`)")],
) -> None:
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

    from records.db import session_scope
    from records.users import list_users, utc_now

    settings = _settings()
    engine = _read_engine(settings)
    with session_scope(engine) as session:
        listings = list_users(session, settings.token_ttl)
    engine.dispose()
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
        print_json(rows)
        return
    print("name\trole\tstate\ttoken_expires_at\tlast_used_at")
    for row in rows:
        print(
            f"{row['name']}\t{row['role']}\t{row['state']}\t"
            f"{row['token_expires_at'] or 'never'}\t{row['last_used_at'] or 'never'}"
        )


def describe_user(user: Any) -> str:
    """``demo-advisor (advisor A03)``: a user's name, role and whom they act as, for messages."""
    acting = user.student_id or user.advisor_id
    return f"{user.name} ({user.role}{' ' + acting if acting else ''})"


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="address to listen on; default PATHWAYS_HOST (127.0.0.1)")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="port to listen on; default PATHWAYS_PORT (8000)")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="processes; default PATHWAYS_WORKERS (1)")
    ] = None,
) -> None:
    """Serve the HTTP API and pages (flags override PATHWAYS_HOST, PATHWAYS_PORT, PATHWAYS_WORKERS)."""
    import os

    import uvicorn

    from pathways.serving import check_port_free, run_workers
    from records.db import upgrade

    overrides = {"host": host, "port": port, "workers": workers}
    for name, value in overrides.items():
        if value is not None:  # flags override the environment, which the worker processes read
            os.environ[f"PATHWAYS_{name.upper()}"] = str(value)
    settings = _settings()
    try:
        upgrade(settings.database_url)
    except Exception as exc:
        if _verbosity["verbose"]:
            raise
        fail(f"database upgrade failed: {first_line(exc)}")
    try:
        # a clear error here, before any worker starts, rather than one per worker in the log; it also
        # keeps a second `pathways serve` from joining this one's SO_REUSEPORT workers on the same port
        listen_port = check_port_free(settings.host, settings.port)
    except OSError as exc:
        fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}")
    err_console.print(
        f"serving on http://{settings.host}:{listen_port} with {settings.workers} worker(s)",
        markup=False,
        highlight=False,
    )
    config = uvicorn.Config(
        "service.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=listen_port,
        workers=settings.workers,
        log_level=verbosity_level(_verbosity["verbose"], _verbosity["quiet"], settings.log_level).lower(),
        access_log=False,
    )
    if settings.workers == 1:
        uvicorn.Server(config).run()
    else:
        run_workers(config)


@app.command()
def demo(
    size: Annotated[str, typer.Option(help="institution size: tiny, small, medium or large")] = "small",
    seed: Annotated[int, typer.Option(help="random seed of the generated institution")] = 7,
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
        console.print(f"\n{account.name}, {account.detail}: {base}{account.page}", markup=False)
        print(f"  token: {account.token}")
    console.print(f"\nAPI documentation: {base}/docs\n", markup=False)
    serve()


if __name__ == "__main__":
    app()
