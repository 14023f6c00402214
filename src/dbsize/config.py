"""Settings: the only module that reads the environment (prefix ``DBSIZE_``)."""

from __future__ import annotations

from datetime import time
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/dbsize"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# What DBSIZE_DATABASE_URL may say: what libpq, psql and SQLAlchemy accept for PostgreSQL. All of
# them mean the asyncpg driver, the only one dbsize ships.
POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "postgresql+asyncpg"})
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def normalise_database_url(value: str) -> str:
    """``postgres://`` / ``postgresql://`` / ``postgresql+asyncpg://`` -> the asyncpg URL;
    ValueError (one sentence, without the URL: it may hold a password) for anything else."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    example = "e.g. postgresql://user@127.0.0.1:5432/dbsize"
    try:
        url = make_url(value)
    except ArgumentError as exc:
        raise ValueError(f"is not a database URL; {example}") from exc
    if url.drivername.lower() not in POSTGRES_SCHEMES:
        raise ValueError(
            f"must be a PostgreSQL URL (postgresql://, postgres:// or postgresql+asyncpg://), "
            f"not {url.drivername}://; {example}"
        )
    if not url.database:
        raise ValueError(f"names no database; {example}")
    return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DBSIZE_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    timezone: str = "UTC"

    # arq queue; tests give every run its own queue so runs never see each other's jobs.
    queue_name: str = "dbsize:queue"

    # Aggregation
    trend_threshold_percent: float = Field(default=5.0, ge=0)

    # Jobs
    cron_enabled: bool = True
    cron_time: time = time(4, 0)
    job_lease_seconds: int = Field(default=60, ge=5, le=3600)
    job_heartbeat_seconds: float = Field(default=5.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    worker_poll_delay_seconds: float = Field(default=0.01, gt=0)
    worker_max_jobs: int = Field(default=4, ge=1)
    # Period types of one job computed at once, each on its own connection. More than the
    # database server's cores only queues work; 1 makes a cancel take effect soonest.
    job_period_concurrency: int = Field(default=2, ge=1, le=4)
    long_poll_max_seconds: int = Field(default=30, ge=0)
    idempotency_key_ttl_hours: int = Field(default=24, ge=1)

    # Read side: an instance or database with no sample for this many days is stale.
    stale_after_days: int = Field(default=2, ge=0, le=3650)

    # Samples
    retention_months: int = Field(default=0, ge=0, description="0 keeps every partition")
    partitions_ahead_months: int = Field(default=3, ge=1)
    max_samples_per_request: int = Field(default=50_000, ge=1)

    # Requests: a body over this many bytes is answered 413 before it is parsed.
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    # Secrets at rest (instance passwords): comma-separated Fernet keys, the first encrypts
    # (decision 0018). Unset: the service refuses to store a password.
    secret_key: SecretStr | None = None
    # The git-ignored folder where `dbsize up` keeps a generated secret key for a local setup.
    local_dir: str = "var"

    # Access: reads (GET of instances, samples, jobs) without a key when true; writes always
    # need a key with the route's scope.
    public_reads: bool = False
    # Collection from the instances' own servers (decision 0019): instances read at once by
    # one job, and the nightly collection job (before the aggregation cron).
    collect_concurrency: int = Field(default=8, ge=1, le=256)
    # POST /v1/instances/{id}/test-connection answers within this, whatever the instance's own
    # (collection-sized) timeouts: an HTTP caller waits for it.
    test_connection_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    collect_cron_enabled: bool = True
    collect_cron_time: time = time(3, 0)

    # Logging
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")
    log_level: str = "INFO"

    # Embedded servers (dbsize up --embedded)
    embedded_dir: str = "var/embedded"

    @field_validator("database_url")
    @classmethod
    def _asyncpg_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in REDIS_SCHEMES:
            raise ValueError(
                "must be a redis://, rediss:// or unix:// URL, e.g. redis://127.0.0.1:6379/0"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone, e.g. UTC") from exc
        return value

    @field_validator("secret_key")
    @classmethod
    def _valid_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        from dbsize.secret_box import parse_keys

        if value is not None:
            parse_keys(value.get_secret_value())
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def explicitly_set(self, name: str) -> bool:
        return name in self.model_fields_set


@lru_cache
def get_settings() -> Settings:
    return Settings()
