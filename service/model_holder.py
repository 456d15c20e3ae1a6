"""Holds the promoted model in memory and swaps in a newly promoted one without a restart.

The holder reads the newest ``promotion`` row at most every ``check_interval_s`` seconds (a
one-row indexed query), loads the named version's artifacts off the request path's lock, and swaps
the reference atomically. A version that fails to load is logged and tried again with exponential
back-off (``retry_base_s`` doubling up to ``retry_max_s``), so putting its artifacts back heals the
process without a restart; the old model (if any) keeps serving meanwhile. :meth:`ModelHolder.state`
says what the holder is doing now: no promoted model, loading, loaded, or failing (and when it tries
again).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from records.db import promoted_version

log = logging.getLogger(__name__)

ModelLoader = Callable[[Path, str | None], Any]
"""(artifact folder, checksum recorded in the registry) -> a loaded model; raises when unusable."""


def freeze_heap() -> None:
    """Collect what is garbage, then keep every object alive now out of the collector's sight until the
    next call (``gc.freeze``): a served model's few hundred thousand objects live until the next swap, and
    a full collection walking them took about 150 ms on the medium model, a pause for every request the
    process holds. Unfrozen first, so the objects of the model swapped out are collected then."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def load_hybrid(artifact_dir: Path, checksum: str | None) -> Any:
    """The production loader: verify the folder's checksums, ``HybridRecommender.load(dir)``, and
    score and explain one student before the model may serve.

    The trial run fails a model this code cannot use (e.g. pickled by an older version) here, where
    the holder keeps the previous model, instead of on every request; it also builds the lazily
    prepared state of the components once, before concurrent requests arrive.
    """
    import numpy as np

    from recommender.base import TermContext
    from recommender.hybrid import HybridRecommender
    from records.registry import verify_artifacts

    model = HybridRecommender.load(verify_artifacts(artifact_dir, checksum))
    fs = model.fs_
    if fs.n_students:
        context = TermContext.open_everything(fs)
        lists = model.recommend(np.array([0], dtype=np.int64), context, 3)
        model.explain(lists, context)
    return model


@dataclass
class LoadFailure:
    """The failed attempts at loading one version: the last reason and when to try again."""

    reason: str
    attempts: int
    retry_at: float
    """``time.monotonic()`` of the next attempt."""


@dataclass(frozen=True)
class HolderState:
    """What a holder is doing: ``none`` (nothing promoted), ``loading``, ``loaded`` or ``failed``."""

    state: str
    promoted: str | None
    loaded: str | None
    reason: str | None = None
    retry_in_s: float | None = None


@dataclass(frozen=True)
class LoadedModel:
    """One loaded model version; immutable so readers never see a half-swapped model."""

    version: str
    model: Any
    artifact_dir: Path
    loaded_at: float
    cache: dict[str, Any] = field(default_factory=dict, compare=False)
    """Per-version derived data (term contexts, lookups), dropped with the model."""


class ModelHolder:
    """The promoted model of one server process.

    ``current`` is None until a model loads. ``refresh()`` may be called from any thread; loads are
    serialised by a lock and never block readers of ``current``.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        artifacts_dir: Path,
        loader: ModelLoader = load_hybrid,
        check_interval_s: float = 2.0,
        on_swap: Callable[[LoadedModel], None] | None = None,
        retry_base_s: float = 1.0,
        retry_max_s: float = 60.0,
        freeze_heap: bool = False,
    ) -> None:
        self._sessions = sessions
        self._freeze_heap = freeze_heap
        self._artifacts_dir = artifacts_dir
        self._loader = loader
        self._check_interval_s = check_interval_s
        self.on_swap = on_swap
        self._lock = threading.Lock()
        self._current: LoadedModel | None = None
        self._last_check = float("-inf")
        self._failed: dict[str, LoadFailure] = {}
        self._loading: str | None = None
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.last_error: str | None = None
        self.promoted: str | None = None
        self.swaps = 0
        self.polled = False
        """True while a :class:`HolderPoller` checks in the background."""

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def maybe_refresh(self) -> LoadedModel | None:
        """Refresh when the last check is older than the interval; returns the current model.

        With a :class:`HolderPoller` driving the holder this only reads: loads never happen on a
        request's thread then.
        """
        if not self.polled and time.monotonic() - self._last_check >= self._check_interval_s:
            self.refresh()
        return self._current

    def state(self) -> HolderState:
        """The holder's current state (read without waiting for a load in progress)."""
        held = self._held_version()
        loading = self._loading
        if loading is not None:
            return HolderState("loading", self.promoted, held, f"loading model {loading}")
        failure = self._failed.get(self.promoted) if self.promoted is not None else None
        if failure is not None:
            retry_in = max(0.0, failure.retry_at - time.monotonic())
            return HolderState("failed", self.promoted, held, failure.reason, round(retry_in, 1))
        if held is not None:
            return HolderState("loaded", self.promoted, held, self.last_error)
        if self.promoted is None:
            return HolderState("none", None, None, self.last_error or "no model has been promoted yet")
        return HolderState("loading", self.promoted, None, f"model {self.promoted} is not loaded yet")

    def unavailable_reason(self) -> str:
        """Why live scoring cannot answer now, for a 503."""
        state = self.state()
        reason = state.reason or "no promoted model is loaded"
        if state.state == "failed" and state.retry_in_s is not None:
            return f"{reason} (trying again in {state.retry_in_s:.0f}s)"
        return reason

    def holds(self, version: str) -> bool:
        return self._held_version() == version

    def retry_now(self) -> LoadedModel | None:
        """Forget the back-off of the promoted version and check again now (e.g. on re-promotion)."""
        self._failed.clear()
        return self.refresh(wait=True)

    def refresh(self, wait: bool = False) -> LoadedModel | None:
        """Load the promoted version if it differs from the held one; never raises.

        Returns at once when another thread is checking or loading, unless ``wait``.
        """
        if not self._lock.acquire(blocking=wait):
            return self._current  # another thread is checking or loading right now
        try:
            self._last_check = time.monotonic()
            try:
                with self._sessions() as session:
                    promoted = promoted_version(session)
                    version = promoted.version if promoted is not None else None
                    artifact_path = promoted.artifact_path if promoted is not None else None
                    checksum = promoted.checksum if promoted is not None else None
            except Exception as exc:  # the database is down: keep serving what we hold
                self.last_error = f"cannot read the promoted version: {type(exc).__name__}"
                log.warning("model holder: %s", self.last_error)
                return self._current
            self.promoted = version
            if version is None:
                self.last_error = "no model has been promoted yet"
                return self._current
            held = self._current
            if held is not None and held.version == version:
                self.last_error = None
                return held
            failure = self._failed.get(version)
            if failure is not None and time.monotonic() < failure.retry_at:
                self.last_error = failure.reason
                return held
            self._loading = version
            try:
                self._load(version, artifact_path, checksum)
            finally:
                self._loading = None
            return self._current
        finally:
            self._lock.release()

    def _load(self, version: str, artifact_path: str | None, checksum: str | None) -> None:
        if not artifact_path:
            self._remember_failure(version, f"model {version} has no artifact path")
            return
        artifact_dir = self._resolve(artifact_path)
        started = time.perf_counter()
        try:
            model = self._loader(artifact_dir, checksum)
        except Exception as exc:
            self._remember_failure(version, f"model {version} failed to load: {type(exc).__name__}: {exc}")
            log.exception("model holder: loading %s failed; keeping %s", version, self._held_version())
            return
        previous = self._held_version()
        loaded = LoadedModel(version, model, artifact_dir, time.time())
        if self.on_swap is not None:
            try:
                self.on_swap(loaded)  # e.g. build the default term context before serving
            except Exception:
                log.exception("model holder: preparing %s failed; it will prepare lazily", version)
        self._current = loaded
        if self._freeze_heap:
            freeze_heap()
        self._failed.pop(version, None)
        self.swaps += 1
        self.last_error = None
        log.info(
            "model holder: serving %s (was %s), loaded in %.2fs",
            version,
            previous,
            time.perf_counter() - started,
        )

    def _resolve(self, artifact_path: str) -> Path:
        path = Path(artifact_path)
        if path.is_absolute() or path.exists():
            return path
        return self._artifacts_dir / path

    def _remember_failure(self, version: str, reason: str) -> None:
        previous = self._failed.get(version)
        attempts = previous.attempts + 1 if previous is not None else 1
        delay = min(self.retry_max_s, self.retry_base_s * 2 ** (attempts - 1))
        self._failed[version] = LoadFailure(reason, attempts, time.monotonic() + delay)
        self.last_error = reason
        log.error("model holder: %s (attempt %d; trying again in %.1fs)", reason, attempts, delay)

    def _held_version(self) -> str | None:
        return self._current.version if self._current is not None else None


class HolderPoller:
    """A daemon thread calling ``holder.refresh()`` at once and then every interval until stopped
    (so a process starts answering from the stored batch while its model loads)."""

    def __init__(self, holder: ModelHolder, interval_s: float) -> None:
        self._holder = holder
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.first_check_done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-holder", daemon=True)

    def start(self) -> None:
        self._holder.polled = True
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._holder.polled = False
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            self._holder.refresh(wait=True)
        finally:
            self.first_check_done.set()
        while not self._stop.wait(self._interval_s):
            self._holder.refresh()
