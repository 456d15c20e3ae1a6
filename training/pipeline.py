"""The nightly job: lock → frames → features → fit → evaluate → gate → refit → artifacts → register →
score → flags → report → promote.

Crash safety: nothing a reader uses changes before the last step. The batch is written with status
``writing`` (invisible); artifacts go to a temporary folder renamed into place; the registry row is a
``candidate``. The last step, in ONE transaction, marks the batch ``complete``, inserts the promotion
row and records duration and report path, so readers never see a promoted model without its batch.
Any failure removes the run's batch, artifacts and report and marks its registry row ``failed``; a run
killed outright leaves a ``writing`` batch, a ``candidate`` row and maybe a temporary folder, which the
next run cleans up first (it holds the lock, so nothing else is writing).

Evaluation protocol (see :mod:`training.evaluate`): the candidate configuration is fitted on
(T-2 → T-1) and scored on T, the newest closed term; the model that is saved and serves is then refitted
on (T-1 → T) to recommend the term after T.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import importlib.metadata
import logging
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session
from threadpoolctl import threadpool_limits

from features.build import build_feature_set
from features.featureset import FeatureSet, memory_by_part
from recommender.collaborative import ALGORITHMS, SPARK_ALGORITHMS
from recommender.hybrid import HybridRecommender, limited_pool
from records.db import make_engine, promoted_version
from records.frames import (
    CLOSED_TERM_MAX_IN_PROGRESS,
    Frames,
    load_frames,
    load_term_state,
    newest_closed_term,
    next_term,
)
from records.schema import ModelVersion
from records.settings import Settings
from training import batch as batches
from training import registry
from training.engines import ENGINES, score_into_batch
from training.evaluate import (
    MIN_EQUITY_GROUP_SIZE,
    EvaluationUnavailable,
    Split,
    evaluate_candidate,
    evaluate_promoted,
    make_split,
)
from training.feedback import feedback_agreement, feedback_pairs
from training.gate import GATE_METRIC, EquityGate, GateDecision, decide
from training.lock import training_lock
from training.outcomes import batch_outcomes
from training.report import write_report
from training.scoring import batch_scorer, batch_students
from training.spark import SparkOptions, spark_scope

log = logging.getLogger(__name__)

STEPS: tuple[str, ...] = (
    "frames",
    "features",
    "fit",
    "evaluate",
    "gate",
    "refit",
    "artifacts",
    "register",
    "score",
    "report",
    "promote",
)
OPENMP_THREADS = 1
"""OpenMP code (scikit-learn's gradient boosting in the risk component, implicit's ALS/BPR) slows down
about twentyfold when its threads compete with other processes for the cores (measured: 19 s vs 1 s for
one gradient-boosting fit on a busy 2-core machine); the job pins it, and the BLAS, to one thread per
call and uses the cores with its own threads instead (``Settings.train_threads``: independent component
fits side by side, chunks of students on a pool). One thread per ALS/BPR fit also keeps BPR's
stochastic updates reproducible."""
# The job's evaluation measures the risk model on the test term (``calibration``): the fits do not also
# hold out a term of their own for it (``risk_metrics``).
MODEL_OPTIONS: dict[str, Any] = {
    "random_state": 0,
    "num_threads": OPENMP_THREADS,
    "risk_metrics": False,
}


def model_defaults(settings: Settings) -> dict[str, Any]:
    """:data:`MODEL_OPTIONS` with the institution's settings that shape the model (the risk penalty)."""
    return {**MODEL_OPTIONS, "risk_penalty": settings.risk_penalty}


def thread_plan(settings: Settings) -> dict[str, int]:
    """The job's thread counts, set once here: ``workers`` threads of the job's own (fits, chunks),
    each library call inside on one (OpenMP, BLAS, implicit)."""
    return {
        "workers": settings.train_threads,
        "openmp_per_call": OPENMP_THREADS,
        "blas_per_call": OPENMP_THREADS,
        "implicit_per_fit": OPENMP_THREADS,
    }


MMAP_THRESHOLD = 4 << 20
"""glibc: allocations of at least this many bytes get pages of their own (mmap), returned to the system
when freed. By default glibc raises that threshold (up to 32 MB) each time such a block is freed, after
which the job's large temporary arrays (the fits' and the blend's working sets, score matrices of a chunk
of students) come from the heaps of its threads and stay in the process when freed: the resident
memory then holds every step's peak at once. A fixed threshold keeps it to what is alive."""


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` (see there) and give the free pages of its
    heaps back now; False where the C library is not glibc (nothing done)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt, malloc_trim = (libc.mallopt, libc.malloc_trim) if libc is not None else (None, None)
    except (OSError, AttributeError):
        return False
    if mallopt is None or malloc_trim is None:
        return False
    m_mmap_threshold = -3
    mallopt(m_mmap_threshold, MMAP_THRESHOLD)
    malloc_trim(0)
    return True


Progress = Callable[[str, str], None]
"""Called as ``progress(step, "start")`` and ``progress(step, "done")``; steps are :data:`STEPS`."""


NO_CLOSED_TERM = (
    "the records have no closed term (a term with enrollments, at most "
    f"{CLOSED_TERM_MAX_IN_PROGRESS:.0%} of them in progress, or twice the least share of any term)"
)


class PipelineError(RuntimeError):
    """The run cannot proceed (no closed term, too few terms...); nothing was changed."""


class InjectedFailure(RuntimeError):
    """Raised by the failure-injection hook ``run_nightly(..., fail_at=step)`` (tests)."""


@dataclass
class RunResult:
    version: str
    status: str
    """``promoted`` or ``rejected``."""
    gate_reason: str
    cutoff_term: str | None
    target_term: str | None
    evaluation: dict[str, Any]
    report_path: Path | None
    artifact_path: Path | None = None
    batch_id: int | None = None
    n_students: int = 0
    """Students scored into the batch (:func:`training.scoring.batch_students`)."""
    n_not_recent: int = 0
    """Active students left out: no enrolment in the last ``within_terms`` terms."""
    within_terms: int = 0
    n_recommendations: int = 0
    n_flags: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def promoted(self) -> bool:
        return self.status == "promoted"


def code_version() -> str:
    """``git describe --always --dirty`` of the source tree, else the installed package version."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        if described:
            return described[:64]
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return importlib.metadata.version("pathways")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Cleaning up after interrupted runs
# ---------------------------------------------------------------------------------------------


def clean_up_interrupted(engine: Engine, settings: Settings) -> dict[str, Any]:
    """Remove what killed runs left: writing batches, candidate rows' artifacts, temporary folders.

    Call only while holding the training lock. Candidate rows become ``failed`` (the registry keeps
    the record of the attempt); their artifact and report folders are deleted.
    """
    stale_batches = batches.discard_stale_batches(engine)
    with Session(engine) as session:
        stale = list(session.scalars(select(ModelVersion).where(ModelVersion.status == "candidate")))
        for row in stale:
            registry.remove_artifacts(row.artifact_path)
            # A killed run may have written its report (before the promote step) but not recorded it.
            registry.remove_artifacts(Path(settings.reports_dir) / row.version)
            row.status = "failed"
            row.gate_reason = "the run was interrupted before promotion"
        session.commit()
        stale_versions = [row.version for row in stale]
    leftovers = registry.remove_staging_leftovers(Path(settings.artifacts_dir))
    leftovers += registry.remove_staging_leftovers(Path(settings.reports_dir))
    if stale_versions or leftovers:
        log.warning(
            "cleaned up after an interrupted run: versions %s, temporary folders %s",
            stale_versions,
            [str(p) for p in leftovers],
        )
    return {"batches": stale_batches, "versions": stale_versions, "folders": leftovers}


# ---------------------------------------------------------------------------------------------
# Comparing with the promoted model
# ---------------------------------------------------------------------------------------------


def _ordinal(frames: Frames, term: str | None) -> int | None:
    if term is None:
        return None
    match = frames.terms.loc[frames.terms["code"] == term, "ordinal"]
    return None if match.empty else int(match.iloc[0])


def promoted_on_split(
    engine: Engine, split: Split, min_group_size: int = MIN_EQUITY_GROUP_SIZE
) -> tuple[dict[str, Any] | None, str]:
    """The promoted model's metrics on the split's test term, and where they come from.

    - data cutoff before the test term: its saved model is loaded (checksums verified) and scored
      live on the test term (``source = "live"``);
    - data cutoff equal to the test term (no new term closed since): it saw the test term, so its own
      evaluation metrics, measured on the same test term when it was trained, are used
      (``source = "stored"``);
    - otherwise (no promoted model, later cutoff, unreadable artifacts): None, with the reason.
    """
    with Session(engine) as session:
        promoted = promoted_version(session)
        if promoted is None:
            return None, "no model is promoted"
        session.expunge(promoted)
    cutoff = _ordinal(split.frames, promoted.cutoff_term)
    base = {"version": promoted.version, "cutoff_term": promoted.cutoff_term}
    if cutoff is not None and cutoff < split.test_ordinal:
        try:
            model = registry.load_model_of(promoted)
            state = load_term_state(engine, split.test_term, cutoff_term=split.fit_cutoff_term)
            metrics = evaluate_promoted(model, split, state, min_group_size)
        except (registry.ArtifactError, ValueError, EvaluationUnavailable) as error:
            return None, f"promoted model {promoted.version} could not be evaluated: {error}"
        return {**base, "source": "live", **metrics}, f"promoted model {promoted.version} scored live"
    stored = promoted.metrics or {}
    if cutoff == split.test_ordinal and stored.get("test_term") == split.test_term:
        hybrid = (stored.get("models") or {}).get("hybrid")
        if hybrid:
            return {**base, "source": "stored", **hybrid}, (
                f"promoted model {promoted.version} has the same data cutoff: its stored metrics on "
                f"{split.test_term} are used"
            )
    return None, f"promoted model {promoted.version} (cutoff {promoted.cutoff_term}) is not comparable"


def equity_history(engine: Engine, current: str, limit: int = 7) -> list[tuple[str, dict[str, Any]]]:
    """The newest ``limit`` other versions' evaluations that hold an equity audit, oldest first (failed
    runs and the ``current`` version left out)."""
    with Session(engine) as session:
        rows = session.execute(
            select(ModelVersion.version, ModelVersion.metrics)
            .where(ModelVersion.status != "failed", ModelVersion.version != current)
            .order_by(ModelVersion.created_at.desc(), ModelVersion.version.desc())
            .limit(4 * limit)
        ).all()
    found = [(version, metrics) for version, metrics in rows if metrics and metrics.get("equity")]
    return list(reversed(found[:limit]))


def _built(fs: FeatureSet, role: str) -> FeatureSet:
    """``fs``, after logging what it holds (total and its four largest parts): the job's largest objects."""
    parts = memory_by_part(fs)
    top = ", ".join(f"{name} {size / 2**20:.0f}" for name, size in list(parts.items())[:4])
    total = sum(parts.values()) / 2**20
    log.info("features: %s (as of %s) holds %.0f MB (%s MB)", role, fs.cutoff_term, total, top)
    return fs


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


class _Run:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        progress: Progress | None,
        fail_at: str | None,
        model_options: Mapping[str, Any] | None = None,
        engine_kind: str = "local",
        spark: SparkOptions | None = None,
    ) -> None:
        if engine_kind not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {engine_kind!r}")
        if fail_at is not None and fail_at not in STEPS:
            raise ValueError(f"fail_at must be one of {STEPS}, not {fail_at!r}")
        self.settings = settings
        self.engine = engine
        self.progress = progress
        self.fail_at = fail_at
        self.model_options = {
            **model_defaults(settings),
            "workers": settings.train_threads,
            **(model_options or {}),
        }
        self.engine_kind = engine_kind
        self.spark = spark
        if engine_kind == "spark":
            # MLlib's ALS joins the collaborative variants the validation split chooses from.
            algorithms = tuple(self.model_options.get("collaborative_algorithms", ALGORITHMS))
            self.model_options["collaborative_algorithms"] = tuple(
                dict.fromkeys(algorithms + SPARK_ALGORITHMS)
            )
        self.timings: dict[str, float] = {}
        self.version = registry.new_version_name()
        self.batch_id: int | None = None
        self.registered = False
        self.artifact_path: Path | None = None
        self.report_path: Path | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self.progress is not None:
            self.progress(name, "start")
        started = time.perf_counter()
        yield
        if name != "promote":  # the promote step injects inside its transaction, before the commit
            self._inject(name)
        self.timings[name] = round(time.perf_counter() - started, 3)
        log.info("step %s done in %.2fs", name, self.timings[name])
        return_freed_memory()  # what the step freed leaves the process before the next one starts
        if self.progress is not None:
            self.progress(name, "done")

    def _inject(self, name: str) -> None:
        """The failure-injection hook: raise when the run was asked to fail at ``name``."""
        if self.fail_at == name:
            raise InjectedFailure(f"failure injected at step {name!r}")

    def execute(self) -> RunResult:
        started = time.perf_counter()
        clean_up_interrupted(self.engine, self.settings)
        try:
            if self.engine_kind == "spark":
                # One Spark session for the run: MLlib ALS in the fits, then the batch scoring.
                with spark_scope(self.spark or SparkOptions()):
                    return self._execute(started)
            return self._execute(started)
        except BaseException as error:
            self._undo(error)
            raise

    def _undo(self, error: BaseException) -> None:
        log.error("run %s failed: %s: %s; undoing its writes", self.version, type(error).__name__, error)
        if self.batch_id is not None:
            try:
                batches.discard_batch(self.engine, self.batch_id)
            except Exception:
                log.exception("could not discard batch %s; the next run removes it", self.batch_id)
        registry.remove_artifacts(self.artifact_path)
        if self.report_path is not None:
            registry.remove_artifacts(self.report_path.parent)
        if self.registered:
            try:
                with Session(self.engine) as session:
                    session.execute(
                        update(ModelVersion)
                        .where(ModelVersion.version == self.version, ModelVersion.status == "candidate")
                        .values(
                            status="failed", gate_reason=f"run failed: {type(error).__name__}: {error}"[:2000]
                        )
                    )
                    session.commit()
            except Exception:
                log.exception("could not mark %s failed; the next run does", self.version)

    def _execute(self, started: float) -> RunResult:
        settings, engine = self.settings, self.engine
        with self.step("frames"):
            cutoff = newest_closed_term(engine)
            if cutoff is None:
                raise PipelineError(NO_CLOSED_TERM)
            frames = load_frames(engine, cutoff)
            target = next_term(engine, cutoff)
            try:
                split: Split | None = make_split(frames)
                skipped = None
            except EvaluationUnavailable as error:
                split, skipped = None, str(error)
            terms_with_enrollments = np.unique(frames.enrollments["term_ordinal"].to_numpy())
            if len(terms_with_enrollments) < 2:
                raise PipelineError(
                    f"training needs enrollments in at least two terms up to {cutoff}; "
                    f"the records have {len(terms_with_enrollments)}"
                )
            previous_term = str(frames.terms.set_index("ordinal")["code"][int(terms_with_enrollments[-2])])
        # Memory: at most two FeatureSets are alive at once (about 0.65 GB each on the large
        # institution). The evaluation fit needs T-2's and T-1's; T's is built while the evaluation
        # runs (below), after T-2's is dropped. Each as_of copy of the frames lives only while its
        # FeatureSet is built. With two threads, T-2's features are built on the second core while T-1's
        # are built here.
        with self.step("features"), limited_pool(1) as builder:
            building_past = (
                builder.submit(build_feature_set, split.past)
                if split is not None and settings.train_threads > 1
                else None
            )
            fs_previous = _built(build_feature_set(frames.as_of(previous_term)), "T-1")
            if building_past is not None:
                fs_past: FeatureSet | None = _built(building_past.result(), "T-2")
            else:
                fs_past = _built(build_feature_set(split.past), "T-2") if split is not None else None
        with self.step("fit"):
            evaluation_model = (
                HybridRecommender(**self.model_options).fit(fs_past, fs_previous)
                if fs_past is not None
                else None
            )
            del fs_past  # only the evaluation fit learns from T-2's records
        with self.step("evaluate"):
            # The evaluation runs on this thread; T's features are built on the other core meanwhile.
            with limited_pool(1) as builder:
                building_now = builder.submit(build_feature_set, frames)
                if split is not None and evaluation_model is not None:
                    promoted_metrics, promoted_note = promoted_on_split(
                        engine, split, settings.equity_min_group_size
                    )
                    state = load_term_state(engine, split.test_term, cutoff_term=split.fit_cutoff_term)
                    evaluation = evaluate_candidate(
                        evaluation_model,
                        split,
                        state,
                        promoted_metrics,
                        settings.equity_min_group_size,
                        threads=settings.train_threads,
                    )
                    evaluation["notes"].append(promoted_note)
                else:
                    evaluation = {"cutoff_term": cutoff, "skipped": skipped, "models": {}, "notes": [skipped]}
                fs_now = _built(building_now.result(), "T")
            del frames, split  # the records themselves: everything after reads the FeatureSets
        with self.step("gate"):
            decision = self._gate(evaluation)
            log.info("gate: %s", decision.reason)
        if not decision.promote:
            return self._finish_rejected(evaluation, decision, cutoff, target, started)

        with self.step("refit"):
            # The evaluation model already serves from fs_previous: its components stand in for the first
            # half of this fit (same options, same records), so nothing is fitted twice on the same
            # records in one run. The serving model keeps the collaborative variant that was evaluated
            # and passed the gate, so no other variant is fitted on fs_previous only to be compared.
            options = dict(self.model_options)
            if evaluation_model is not None:
                options["collaborative_algorithms"] = (evaluation_model.collaborative_algorithm_,)
            # It is also made as the evaluated model was (the same kind of blend, shrunk and re-ranked as
            # that model's validation split chose): the blend is learned once, nothing is cross-fitted.
            model = HybridRecommender(**options).fit(
                fs_previous, fs_now, reuse=evaluation_model, recipe=evaluation_model
            )
            # What only the fits needed: the older feature sets and the evaluation model.
            del evaluation_model, fs_previous
            # Without an evaluation (too few terms) the served model still says what abstained.
            evaluation.setdefault("abstained", dict(getattr(model, "abstained_", {})))
        with self.step("artifacts"):
            self.artifact_path, checksum = registry.write_artifacts(
                Path(settings.artifacts_dir), self.version, model.save
            )
        with self.step("register"):
            with Session(engine) as session:
                session.add(
                    ModelVersion(
                        version=self.version,
                        status="candidate",
                        cutoff_term=cutoff,
                        code_version=code_version(),
                        artifact_path=str(self.artifact_path),
                        checksum=checksum,
                        metrics=_json_safe(evaluation),
                        gate_reason=decision.reason,
                    )
                )
                session.commit()
            self.registered = True
        with self.step("score"):
            scorer = batch_scorer(
                engine, model, target, cutoff, settings.batch_k, settings.fail_risk_threshold
            )
            evaluation["feedback"] = feedback_agreement(
                model, scorer.context, feedback_pairs(engine), settings.batch_k
            )
            self.batch_id = batches.start_batch(engine, self.version, target, settings.batch_k)
            students = batch_students(model.fs_, settings.active_within_terms)
            log.info(students.describe())
            n_students = len(students.rows)
            n_recommendations, n_flags = score_into_batch(
                engine,
                scorer,
                students.rows,
                self.batch_id,
                settings.database_url,
                self.engine_kind,
                self.spark,
                threads=settings.train_threads,
            )
        duration = time.perf_counter() - started
        with self.step("report"):
            self.report_path = write_report(
                Path(settings.reports_dir),
                self.version,
                evaluation,
                decision.reason,
                self.timings,
                extra={
                    "students scored": n_students,
                    "active students left out (not recently enrolled)": students.left_out(),
                    "recommendations stored": n_recommendations,
                    "flags": n_flags,
                    "target term": target,
                    "feedback pairs (positive / negative)": (
                        f"{evaluation['feedback']['n_positive']} / {evaluation['feedback']['n_negative']}"
                    ),
                    "feedback positives in top k": evaluation["feedback"]["positives_in_top_k"],
                    "feedback negatives in top k": evaluation["feedback"]["negatives_in_top_k"],
                },
                history=equity_history(engine, self.version),
                outcomes=batch_outcomes(engine, cutoff),
            )
        with self.step("promote"):
            self._promote(evaluation, n_students, duration)
        duration = time.perf_counter() - started
        with Session(engine) as session:
            session.execute(
                update(ModelVersion).where(ModelVersion.version == self.version).values(duration_s=duration)
            )
            session.commit()
        return RunResult(
            version=self.version,
            status="promoted",
            gate_reason=decision.reason,
            cutoff_term=cutoff,
            target_term=target,
            evaluation=evaluation,
            report_path=self.report_path,
            artifact_path=self.artifact_path,
            batch_id=self.batch_id,
            n_students=n_students,
            n_not_recent=students.n_not_recent,
            within_terms=students.within_terms,
            n_recommendations=n_recommendations,
            n_flags=n_flags,
            timings=dict(self.timings),
            duration_s=duration,
        )

    def _gate(self, evaluation: dict[str, Any]) -> GateDecision:
        hybrid = (evaluation.get("models") or {}).get("hybrid")
        if hybrid is None:
            with Session(self.engine) as session:
                if promoted_version(session) is None:
                    return GateDecision(True, f"promoted without evaluation ({evaluation.get('skipped')})")
            return GateDecision(False, f"rejected: cannot be evaluated ({evaluation.get('skipped')})")
        return decide(
            hybrid,
            evaluation["models"].get("promoted"),
            int(evaluation.get("eligibility_violations", 0)),
            self.settings.gate_tolerance,
            GATE_METRIC,
            equity=EquityGate(self.settings.gate_equity_growth, self.settings.gate_equity_floor),
        )

    def _promote(self, evaluation: dict[str, Any], n_students: int, duration: float) -> None:
        """ONE transaction: complete the batch, promote the version, record timings and the report."""
        assert self.batch_id is not None
        with Session(self.engine) as session:
            batches.complete_batch(session, self.batch_id, n_students)
            row = session.get(ModelVersion, self.version)
            assert row is not None
            row.metrics = _json_safe({**evaluation, "timings": dict(self.timings)})
            row.report_path = str(self.report_path) if self.report_path else None
            row.duration_s = duration
            registry.record_promotion(session, self.version, action="promote", actor="nightly")
            self._inject("promote")
            session.commit()

    def _finish_rejected(
        self,
        evaluation: dict[str, Any],
        decision: GateDecision,
        cutoff: str | None,
        target: str | None,
        started: float,
    ) -> RunResult:
        with self.step("report"):
            self.report_path = write_report(
                Path(self.settings.reports_dir),
                self.version,
                evaluation,
                decision.reason,
                self.timings,
                history=equity_history(self.engine, self.version),
            )
        duration = time.perf_counter() - started
        with Session(self.engine) as session:
            session.add(
                ModelVersion(
                    version=self.version,
                    status="rejected",
                    cutoff_term=cutoff,
                    code_version=code_version(),
                    duration_s=duration,
                    metrics=_json_safe({**evaluation, "timings": dict(self.timings)}),
                    gate_reason=decision.reason,
                    report_path=str(self.report_path),
                )
            )
            session.commit()
        return RunResult(
            version=self.version,
            status="rejected",
            gate_reason=decision.reason,
            cutoff_term=cutoff,
            target_term=target,
            evaluation=evaluation,
            report_path=self.report_path,
            timings=dict(self.timings),
            duration_s=duration,
        )


def _json_safe(value: Any) -> Any:
    """Plain JSON types only (numpy scalars to Python, NaN/inf to None)."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path | dt.date):
        return str(value)
    return value


def run_nightly(
    settings: Settings,
    progress: Progress | None = None,
    fail_at: str | None = None,
    engine: Engine | None = None,
    model_options: Mapping[str, Any] | None = None,
    engine_kind: str = "local",
    spark: SparkOptions | None = None,
) -> RunResult:
    """Run the nightly job once under the training lock (LockHeldError when another run holds it).

    ``fail_at``: name of a step (:data:`STEPS`) at whose end to raise :class:`InjectedFailure` (tests);
    for ``promote`` it is raised inside the promotion transaction, just before its commit.
    ``model_options``: keyword arguments for ``HybridRecommender`` over :data:`MODEL_OPTIONS`.
    ``engine_kind``: where the batch's students are scored, ``local`` or ``spark`` (with ``spark``'s
    master and settings; see :mod:`training.spark`).
    """
    own_engine = engine is None
    engine = engine or make_engine(settings.database_url)
    try:
        with training_lock(Path(settings.lock_path)), ExitStack() as limits:
            plan = thread_plan(settings)
            limits.enter_context(threadpool_limits(plan["openmp_per_call"], user_api="openmp"))
            limits.enter_context(threadpool_limits(plan["blas_per_call"], user_api="blas"))
            log.info("threads: %s; freed memory returned to the system: %s", plan, return_freed_memory())
            return _Run(settings, engine, progress, fail_at, model_options, engine_kind, spark).execute()
    finally:
        if own_engine:
            engine.dispose()


def run_evaluation(
    settings: Settings, engine: Engine | None = None, model_options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Evaluation only (``pathways evaluate``): fit on (T-2 → T-1), score T, baselines and promoted.

    Nothing is written. Raises EvaluationUnavailable / PipelineError with the reason.
    """
    own_engine = engine is None
    engine = engine or make_engine(settings.database_url)
    try:
        cutoff = newest_closed_term(engine)
        if cutoff is None:
            raise PipelineError(NO_CLOSED_TERM)
        split = make_split(load_frames(engine, cutoff))
        with threadpool_limits(OPENMP_THREADS, user_api="openmp"):
            model = HybridRecommender(**{**model_defaults(settings), **(model_options or {})}).fit(
                build_feature_set(split.past), build_feature_set(split.current)
            )
        promoted_metrics, promoted_note = promoted_on_split(engine, split, settings.equity_min_group_size)
        state = load_term_state(engine, split.test_term, cutoff_term=split.fit_cutoff_term)
        evaluation = evaluate_candidate(
            model,
            split,
            state,
            promoted_metrics,
            settings.equity_min_group_size,
            threads=settings.train_threads,
        )
        evaluation["notes"].append(promoted_note)
        return _json_safe(evaluation)
    finally:
        if own_engine:
            engine.dispose()
