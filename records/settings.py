"""One settings class, read from the environment (prefix ``PATHWAYS_``), built by :func:`get_settings`.

It lives in the bottom layer so that every layer may read it; the shell (``pathways``) builds it and passes
it down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATHWAYS_", extra="ignore")

    database_url: str = "sqlite:///var/pathways.db"
    artifacts_dir: Path = Path("var/models")
    reports_dir: Path = Path("var/reports")
    lock_path: Path = Path("var/train.lock")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    # Recommendation list length the batch stores per student.
    batch_k: int = Field(default=10, ge=1, le=50)
    # Predicted fail probability above which a recommendation is flagged for advisors.
    fail_risk_threshold: float = Field(default=0.35, ge=0.0, le=1.0)
    # Gate: a candidate may be at most this much worse (absolute NDCG@10) than the promoted model.
    gate_tolerance: float = Field(default=0.005, ge=0.0)
    # Largest request body the service accepts, in bytes.
    max_request_bytes: int = Field(default=64 * 1024, ge=1024)


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
