"""The model registry: versioned artifacts with checksums, the version list, promotion and rollback.

Artifacts of version ``V`` live in ``artifacts_dir/V/``: the files the model's ``save`` wrote (so
``HybridRecommender.load(artifacts_dir/V)`` works, as the service's model holder does) and
``checksums.json`` (``{"algorithm": "sha256", "files": {relative path: hex digest}}``). They are
written into a hidden temporary folder next to it and renamed into place, so a version folder is either
complete or absent. ``model_version.checksum`` is the sha256 of ``checksums.json`` itself.

The promoted model is the version of the newest ``promotion`` row (``records.db.promoted_version``);
promoting is one INSERT. Readers of stored recommendations use the newest ``complete`` batch of the
promoted version (:func:`records.db.current_batch`), so old batches are kept and a rollback swaps the
batch too.

It lives in the bottom layer so that both the nightly job (``training``) and the service may use it;
loading a saved model (which needs ``recommender``) is :func:`training.registry.load_model_of`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from records.db import current_batch, promoted_version
from records.schema import ModelVersion, Promotion

log = logging.getLogger(__name__)

CHECKSUMS_FILE = "checksums.json"
TEMP_PREFIX = ".tmp-"


class RegistryError(ValueError):
    """A registry operation cannot be done (unknown version, nothing to roll back to, no batch...)."""


class ArtifactError(RegistryError):
    """A version's artifacts are missing or do not match their checksums."""


def new_version_name(now: dt.datetime | None = None) -> str:
    """A sortable, unique version name such as ``20261126-102830-3fa9``."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


# ---------------------------------------------------------------------------------------------
# Artifacts
# ---------------------------------------------------------------------------------------------


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (except checksums.json), keyed by POSIX relative path."""
    return {
        path.relative_to(folder).as_posix(): _sha256_of_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() != CHECKSUMS_FILE
    }


def write_artifacts(
    artifacts_dir: Path, version: str, save_model: Callable[[Path], None]
) -> tuple[Path, str]:
    """Write a version's artifacts atomically; return (version folder, sha256 of checksums.json).

    ``save_model(folder)`` writes the model into ``folder`` (which exists and is empty; it must not
    write a file named checksums.json). Everything is
    written into ``artifacts_dir/.tmp-<version>`` and renamed to ``artifacts_dir/<version>`` at the end;
    on any error the temporary folder is removed and nothing appears.
    """
    artifacts_dir = Path(artifacts_dir)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    final = artifacts_dir / version
    if final.exists():
        raise ArtifactError(f"artifacts for version {version} already exist at {final}")
    staging = artifacts_dir / f"{TEMP_PREFIX}{version}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        save_model(staging)
        manifest = {"algorithm": "sha256", "version": version, "files": file_checksums(staging)}
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
        (staging / CHECKSUMS_FILE).write_bytes(manifest_bytes)
        _fsync_tree(staging)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final, hashlib.sha256(manifest_bytes).hexdigest()


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


def verify_artifacts(folder: Path, expected_checksum: str | None = None) -> Path:
    """Check every file of a version folder against ``checksums.json``; return the folder.

    Raises :class:`ArtifactError` naming the first missing, extra or changed file, or a manifest
    whose own sha256 differs from ``expected_checksum`` (the registry row's).
    """
    folder = Path(folder)
    manifest_path = folder / CHECKSUMS_FILE
    if not manifest_path.is_file():
        raise ArtifactError(f"{manifest_path} is missing")
    manifest_bytes = manifest_path.read_bytes()
    if expected_checksum and hashlib.sha256(manifest_bytes).hexdigest() != expected_checksum:
        raise ArtifactError(f"{manifest_path} does not match the checksum recorded in the registry")
    expected = json.loads(manifest_bytes)["files"]
    actual = file_checksums(folder)
    for name, digest in expected.items():
        if name not in actual:
            raise ArtifactError(f"artifact file {folder / name} is missing")
        if actual[name] != digest:
            raise ArtifactError(f"artifact file {folder / name} does not match its sha256 checksum")
    extra = sorted(set(actual) - set(expected))
    if extra:
        raise ArtifactError(f"artifact folder {folder} holds unlisted file {extra[0]}")
    return folder


def remove_artifacts(folder: Path | str | None) -> None:
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def remove_staging_leftovers(artifacts_dir: Path) -> list[Path]:
    """Delete temporary folders that a killed run left behind; return them."""
    artifacts_dir = Path(artifacts_dir)
    if not artifacts_dir.is_dir():
        return []
    leftovers = [path for path in artifacts_dir.iterdir() if path.name.startswith(TEMP_PREFIX)]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers


# ---------------------------------------------------------------------------------------------
# Listing, promotion, rollback
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionSummary:
    version: str
    created_at: dt.datetime
    status: str
    cutoff_term: str | None
    ndcg_at_10: float | None
    recall_at_10: float | None
    promoted: bool
    gate_reason: str | None
    report_path: str | None
    abstained: dict[str, str] = field(default_factory=dict)
    """Components that abstained (name → reason) in the version's evaluation."""


def _metric(model: ModelVersion, name: str) -> float | None:
    hybrid = (model.metrics or {}).get("models", {}).get("hybrid") or {}
    value = hybrid.get(name)
    return None if value is None else float(value)


def list_versions(session: Session) -> list[VersionSummary]:
    """Every model version, newest first, with its headline metrics and the promoted marker."""
    promoted = promoted_version(session)
    promoted_name = promoted.version if promoted is not None else None
    rows = session.scalars(
        select(ModelVersion).order_by(ModelVersion.created_at.desc(), ModelVersion.version.desc())
    )
    return [
        VersionSummary(
            version=row.version,
            created_at=row.created_at,
            status=row.status,
            cutoff_term=row.cutoff_term,
            ndcg_at_10=_metric(row, "ndcg@10"),
            recall_at_10=_metric(row, "recall@10"),
            promoted=row.version == promoted_name,
            gate_reason=row.gate_reason,
            report_path=row.report_path,
            abstained=dict((row.metrics or {}).get("abstained") or {}),
        )
        for row in rows
    ]


def record_promotion(
    session: Session,
    version: str,
    action: str = "promote",
    actor: str | None = None,
    follows: int | None = None,
) -> Promotion:
    """Make ``version`` the promoted model: one INSERT into ``promotion`` plus status bookkeeping.

    Refuses (RegistryError) an unknown or failed version, one without artifacts, or one without a
    complete recommendation batch (readers would find no stored recommendations). Flushes, never
    commits: the caller's transaction decides, so a batch can be completed in the same transaction.
    """
    model = session.get(ModelVersion, version)
    if model is None:
        raise RegistryError(f"no model version {version!r}")
    if model.status == "failed" or not model.artifact_path:
        raise RegistryError(f"model version {version!r} has no usable artifacts (status {model.status})")
    if current_batch(session, version) is None:
        raise RegistryError(f"model version {version!r} has no complete recommendation batch")
    if follows is None:  # the caller's decision was based on the state as it is now
        follows = int(session.scalar(select(func.max(Promotion.id))) or 0)
    current = promoted_version(session)
    if current is not None and current.version != version and current.status == "promoted":
        current.status = "retired"
    model.status = "promoted"
    promotion = Promotion(
        # Unique: a promotion decided from the same state as another one fails to insert.
        follows=follows,
        version=version,
        previous_version=current.version if current is not None else None,
        action=action,
        actor=actor,
    )
    session.add(promotion)
    session.flush()
    log.info("model %s: %s (was %s) by %s", action, version, promotion.previous_version, actor)
    return promotion


def promote(
    session: Session, version: str, actor: str | None = None, follows: int | None = None
) -> Promotion:
    """Promote ``version`` after verifying its artifacts; the caller commits."""
    model = session.get(ModelVersion, version)
    if model is None:
        raise RegistryError(f"no model version {version!r}")
    current = promoted_version(session)
    if current is not None and current.version == version:
        raise RegistryError(f"model version {version!r} is already promoted")
    if model.artifact_path:
        verify_artifacts(Path(model.artifact_path), model.checksum)
    return record_promotion(session, version, action="promote", actor=actor, follows=follows)


def rollback_target(session: Session) -> str:
    """The version promoted before the current one: the newest promotion of a different version."""
    current = promoted_version(session)
    if current is None:
        raise RegistryError("no model is promoted, so there is nothing to roll back")
    history = session.scalars(select(Promotion.version).order_by(Promotion.id.desc()))
    previous = next((name for name in history if name != current.version), None)
    if previous is None:
        raise RegistryError(f"no version was promoted before {current.version!r}")
    return previous


def rollback(session: Session, actor: str | None = None, follows: int | None = None) -> Promotion:
    """Promote again the version promoted before the current one (its batch comes back with it)."""
    target = rollback_target(session)
    model = session.get(ModelVersion, target)
    if model is not None and model.artifact_path:
        verify_artifacts(Path(model.artifact_path), model.checksum)
    return record_promotion(session, target, action="rollback", actor=actor, follows=follows)
