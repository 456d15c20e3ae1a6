"""One settings class, read from the environment (prefix ``PATHWAYS_``), built by :func:`get_settings`.

It lives in the bottom layer so that every layer may read it; the shell (``pathways``) builds it and passes
it down."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

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
    # The nightly batch scores students whose status is active AND whose newest enrolment lies in one of
    # the last this many terms up to the cutoff (or, never enrolled, whose entry term does, is later or is
    # unknown): a stale status (an interaction log makes every learner active) costs no nightly list. 3:
    # the cutoff term and the two before it, a year out (two terms) included. Anyone left out gets a live
    # list. 0 scores every active student. Counted in the records' terms (month terms: months).
    active_within_terms: int = Field(default=3, ge=0)
    # The fit-versus-risk trade-off: blend logits subtracted from a candidate's final score per unit of its
    # predicted fail probability (bench/README.md, "Fit against risk"; 0 ranks by fit alone). Where the
    # records have no grades (risk on statuses alone) the validation split may serve less.
    risk_penalty: float = Field(default=3.0, ge=0.0, le=100.0)
    # Predicted fail probability above which a recommendation is flagged for advisors.
    fail_risk_threshold: float = Field(default=0.35, ge=0.0, le=1.0)
    # Gate: a candidate may be at most this much worse (absolute NDCG@10) than the promoted model.
    gate_tolerance: float = Field(default=0.005, ge=0.0)
    # Gate, equity: the largest NDCG@10 gap between entry routes and the largest difference between their
    # track mixes may grow by at most this share of the promoted model's value (0.10 = 10% relative)...
    gate_equity_growth: float = Field(default=0.10, ge=0.0)
    # ...or by at most this much (absolute), whichever is larger (a gap near zero would refuse noise).
    gate_equity_floor: float = Field(default=0.01, ge=0.0)
    # Equity audit: groups with fewer students are reported as too small, not compared.
    equity_min_group_size: int = Field(default=30, ge=1)
    # Threads of the nightly job: component fits side by side, candidate-pair and scoring chunks (each
    # library call inside on one thread, so they do not compete for the cores).
    train_threads: int = Field(default=2, ge=1, le=64)
    # Spark master for `--engine spark` (local[*], spark://host:7077, yarn, k8s://...).
    spark_master: str = "local[*]"
    # Largest request body the service accepts, in bytes.
    max_request_bytes: int = Field(default=64 * 1024, ge=1024)
    # Bearer tokens stop working this many days after they were issued (0: they never expire).
    token_ttl_days: float = Field(default=90.0, ge=0.0)
    # A signed-in page session lasts this many hours (sign-out ends it sooner).
    session_ttl_hours: float = Field(default=12.0, gt=0.0)
    # Live scoring (a list other than the default one) per user and minute; 0 turns the limit off.
    live_rate_per_minute: float = Field(default=60.0, ge=0.0)
    # Live scorings a user may make at once before the per-minute rate applies.
    live_burst: int = Field(default=20, ge=1)
    # Who may read /metrics: anyone ("open"), an admin's bearer token ("token"), or nobody ("off").
    metrics_access: Literal["open", "token", "off"] = "open"
    # Service processes `pathways serve` starts (uvicorn workers).
    workers: int = Field(default=1, ge=1, le=64)
    # Database connections each service process keeps open (and as many more while busy, closed again
    # when done). Fewer than the requests a process serves at once opens a connection for the rest: on a
    # database server each costs a new server process and its cold caches (bench/README.md, run 12).
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # A model that fails to load is tried again after this many seconds, doubling up to the maximum.
    model_retry_base_s: float = Field(default=1.0, gt=0.0)
    model_retry_max_s: float = Field(default=60.0, gt=0.0)

    @property
    def token_ttl(self) -> dt.timedelta | None:
        return dt.timedelta(days=self.token_ttl_days) if self.token_ttl_days > 0 else None

    @property
    def session_ttl(self) -> dt.timedelta:
        return dt.timedelta(hours=self.session_ttl_hours)


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
