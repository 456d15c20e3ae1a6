"""The model registry as the nightly job sees it: :mod:`records.registry` (artifacts with checksums,
the version list, promotion and rollback, kept in the bottom layer so the service can use it too),
and :func:`load_model_of`, which needs the recommender."""

from __future__ import annotations

from pathlib import Path

from records.registry import (
    CHECKSUMS_FILE,
    TEMP_PREFIX,
    ArtifactError,
    RegistryError,
    VersionSummary,
    file_checksums,
    list_versions,
    new_version_name,
    promote,
    record_promotion,
    remove_artifacts,
    remove_staging_leftovers,
    rollback,
    rollback_target,
    verify_artifacts,
    write_artifacts,
)
from records.schema import ModelVersion

__all__ = [
    "CHECKSUMS_FILE",
    "TEMP_PREFIX",
    "ArtifactError",
    "RegistryError",
    "VersionSummary",
    "file_checksums",
    "list_versions",
    "load_model_of",
    "new_version_name",
    "promote",
    "record_promotion",
    "remove_artifacts",
    "remove_staging_leftovers",
    "rollback",
    "rollback_target",
    "verify_artifacts",
    "write_artifacts",
]


def load_model_of(model: ModelVersion):  # type: ignore[no-untyped-def]
    """The saved HybridRecommender of a registry row, after verifying its checksums."""
    from recommender.hybrid import HybridRecommender

    if not model.artifact_path:
        raise ArtifactError(f"model version {model.version} has no artifacts")
    model_folder = verify_artifacts(Path(model.artifact_path), model.checksum)
    return HybridRecommender.load(model_folder)
