"""One configuration format for every command: YAML validated by pydantic.

Every command runs with no file at all (the defaults below). Unknown or mistyped keys fail with a
message naming the key, because a silently ignored setting is worse than an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

HOME_ENV = "PRESAGE_HOME"
DEFAULT_HOME = "lakehouse"


class ConfigError(ValueError):
    """A configuration file that cannot be used, with the offending key in the message."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkSettings(_Strict):
    profile: str = Field("local", description="name of a spark_conf/<profile>.conf file, or a path")
    conf: dict[str, str] = Field(default_factory=dict, description="settings applied over the profile")


class PrivacySettings(_Strict):
    key_env: str = Field("PRESAGE_HMAC_KEY", description="environment variable holding the HMAC key")


class IngestSettings(_Strict):
    future_tolerance_hours: float = Field(
        24.0, ge=0, description="event timestamps later than ingestion time plus this are rejected"
    )
    earliest_timestamp: str = Field(
        "2000-01-01T00:00:00", description="event timestamps before this are rejected as implausible"
    )


IDENTIFIER_KINDS = ("customer_id", "email", "phone", "social_handle", "device_id")


def _default_blocked() -> dict[str, list[str]]:
    return {
        "email": ["test@test.com", "noemail@noemail.com", "none@example.com", "na@na.com", "no@email.com", "unknown@unknown.com"],
        "phone": ["0000000000", "1234567890", "9999999999"],
        "device_id": ["00000000-0000-0000-0000-000000000000", "unknown"],
    }


class IdentitySettings(_Strict):
    """Guard rails of identity resolution."""

    max_customers_per_identifier: dict[str, int] = Field(
        default_factory=lambda: {"email": 3, "phone": 3, "device_id": 3, "social_handle": 2},
        description="an identifier seen with more CRM ids than this is shared and merges nobody",
    )
    blocked: dict[str, list[str]] = Field(
        default_factory=_default_blocked,
        description="identifier values never used to link (clear values; emails/phones are normalized and hashed)",
    )

    max_customer_ids_per_person: int = Field(
        3, ge=1, description="a person holding more CRM ids than this is split by dropping its lowest-priority links"
    )
    priority: list[str] = Field(
        default_factory=lambda: list(IDENTIFIER_KINDS),
        description="identifier kinds from most to least trusted; the least trusted links are dropped first",
    )

    @field_validator("priority")
    @classmethod
    def _priority_complete(cls, value: list[str]) -> list[str]:
        if sorted(value) != sorted(IDENTIFIER_KINDS):
            raise ValueError(f"priority must order exactly the kinds {list(IDENTIFIER_KINDS)}, got {value}")
        return value

    @field_validator("max_customers_per_identifier", "blocked")
    @classmethod
    def _known_kinds(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(IDENTIFIER_KINDS))
        if unknown:
            raise ValueError(f"unknown identifier kinds {unknown}; known: {list(IDENTIFIER_KINDS)}")
        return value

    @field_validator("max_customers_per_identifier")
    @classmethod
    def _limits_positive(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [k for k, v in value.items() if v < 1]
        if bad:
            raise ValueError(f"limits must be >= 1: {bad}")
        return value


class FeatureSettings(_Strict):
    """Which as-of dates get a feature snapshot."""

    frequency: Literal["daily", "weekly"] = Field(
        "weekly", description="one snapshot per day, or per week (Mondays 00:00 UTC)"
    )
    lookback_days: int = Field(
        365, gt=0, description="snapshots go back this far from the newest data"
    )
    min_history_days: int = Field(
        28, ge=0, description="no snapshot before the earliest data plus this many days"
    )


class FeastSettings(_Strict):
    """Where the Feast repository is and which of its store configurations to use."""

    repo: str = Field("feature_repo", description="the Feast repository folder (relative to the working directory)")
    yaml: str = Field(
        "feature_store.yaml",
        description="store configuration inside the repository: feature_store.yaml (SQLite) or feature_store.redis.yaml",
    )


class ModelSettings(_Strict):
    """How models are trained, compared and reported (see docs/models.md)."""

    num_workers: int = Field(2, ge=1, description="xgboost.spark workers (one Spark task each, barrier mode)")
    max_rounds: int = Field(600, ge=1, description="boosting rounds at most; early stopping picks fewer")
    early_stopping_rounds: int = Field(40, ge=1)
    params: dict[str, float | int | str] = Field(
        default_factory=dict, description="XGBoost parameters over the defaults (max_depth, learning_rate, ...)"
    )
    imbalance: Literal["keep_probabilities", "balance"] = Field(
        "keep_probabilities",
        description="keep_probabilities: max_delta_step 1 and no reweighting, so scores stay calibrated "
        "(they feed expected value and budgets); balance: scale_pos_weight = negatives / positives",
    )
    holdout_snapshots: int = Field(4, ge=1, description="the latest labelled snapshots held out for validation")
    max_training_rows: int = Field(
        2_000_000, ge=1000, description="training rows kept at most (a deterministic sample of persons)"
    )
    evaluation_rows: int = Field(
        250_000, ge=1000,
        description="holdout rows brought to the driver for metrics and plots, at most (a model's ~100 columns "
        "make 250k rows ~0.2 GB of results, within the driver's 1 GiB spark.driver.maxResultSize)"
    )
    active_days: int = Field(365, gt=0, description="churn: a customer with an order in this many days is active")
    sensitive_attributes: list[str] = Field(
        default_factory=lambda: ["gender", "age_years"],
        description="never model features; fairness is reported across their groups",
    )
    min_group_rows: int = Field(50, ge=1, description="fairness ratios ignore groups smaller than this")
    min_improvement: float = Field(
        0.0, ge=0, description="the challenger takes the champion alias when its primary metric is higher by more than this"
    )


class MlflowSettings(_Strict):
    tracking_uri: str | None = Field(
        None, description="MLflow tracking server or database; default: SQLite under <home>/mlflow"
    )
    experiment: str = Field("presage", description="experiment name prefix: <experiment>/<model>")
    registered_prefix: str = Field("presage_", description="registered model name: <prefix><model>")


class ChannelSettings(_Strict):
    cost_per_contact: float = Field(gt=0, description="cost of one contact or impression")
    min_budget: float = Field(0.0, ge=0)
    max_budget: float | None = Field(None, ge=0)


def _default_channels() -> dict[str, ChannelSettings]:
    costs = {"email": 0.002, "sms": 0.03, "push": 0.0005, "display": 0.004, "social_ads": 0.006}
    return {name: ChannelSettings(cost_per_contact=cost) for name, cost in costs.items()}


class LeadSettings(_Strict):
    """How lead_priority turns scores into tiers and a next best action (see docs/scoring.md)."""

    hot_share: float = Field(0.10, gt=0, lt=1, description="the top share of persons by purchase propensity: tier hot")
    warm_share: float = Field(0.30, gt=0, lt=1, description="the next share: tier warm; the rest is cold")
    retention_churn_risk: float = Field(
        0.5, gt=0, lt=1, description="churn risk from which a valuable customer gets a retention offer"
    )
    reasons: int = Field(3, ge=1, le=10, description="top reasons in words per person")
    explain_tiers: list[Literal["hot", "warm", "cold"]] = Field(
        ["hot", "warm"], min_length=1,
        description="tiers whose reasons batch scoring writes: exact SHAP is most of its cost, and "
                    "`presage serve` explains anyone on request",
    )


class BudgetSettings(_Strict):
    """The budget the allocation spreads over (segment, channel); channels carry cost and bounds."""

    total: float = Field(
        100.0, gt=0, description="total budget of the period, in the order currency (the default suits the demo's 10,000 persons)"
    )
    target_roas: float | None = Field(
        None, gt=0, description="optional: no money past the point where the marginal return on ad spend falls below this"
    )
    segment_by: Literal["micro", "rfm"] = Field("micro", description="which segments the budget is split over")
    curve_points: int = Field(
        200, ge=2, description="breakpoints of each (segment, channel) response curve (persons grouped by rank)"
    )


class SegmentSettings(_Strict):
    """Behavioural micro-segments (Spark ML k-means) and RFM segments (see docs/scoring.md)."""

    micro_segments: int = Field(
        30, ge=2, description="k of k-means: dozens of small segments (fewer when the snapshot has fewer persons)"
    )
    max_iterations: int = Field(40, ge=1, description="k-means iterations at most")
    seed: int = Field(7, description="k-means initialisation seed: the same snapshot gives the same segments")


class RecommendationSettings(_Strict):
    """Top-N products per person from implicit feedback (Spark ML ALS)."""

    top_n: int = Field(10, ge=1)
    lookback_days: int = Field(365, gt=0, description="interactions older than this are ignored")
    half_life_days: float = Field(60.0, gt=0, description="an interaction's weight halves every this many days")
    weights: dict[str, float] = Field(
        default_factory=lambda: {"product_view": 1.0, "add_to_cart": 3.0, "purchase": 5.0},
        description="implicit feedback strength per interaction kind",
    )
    rank: int = Field(32, ge=1)
    reg_param: float = Field(0.05, gt=0)
    alpha: float = Field(10.0, gt=0, description="ALS implicit-feedback confidence scale")
    max_iterations: int = Field(10, ge=1)
    exclude_bought_days: int = Field(
        90, ge=0, description="products bought this recently are not recommended unless they are repeat-purchase items"
    )
    seed: int = Field(7)

    @field_validator("weights")
    @classmethod
    def _known_interactions(cls, value: dict[str, float]) -> dict[str, float]:
        known = ("product_view", "add_to_cart", "purchase")
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown interaction kinds {unknown}; known: {list(known)}")
        if any(v < 0 for v in value.values()) or not any(v > 0 for v in value.values()):
            raise ValueError(f"weights must be >= 0 with at least one > 0, got {value}")
        return value


class AnomalySettings(_Strict):
    """Thresholds of the behaviours worth a look (see docs/scoring.md)."""

    lookback_days: int = Field(30, gt=0, description="only behaviour in this window before the score date is flagged")
    amount_robust_z: float = Field(
        8.0, gt=0, description="order amount this many robust deviations (median/MAD) above normal; amounts are "
        "heavy-tailed, so 8 flags about 1% of orders on generated data (5 flags about 4%)"
    )
    history_days: int = Field(
        365, gt=0, description="a person's usual order amount comes from their orders in this many days before the window"
    )
    min_history_orders: int = Field(
        5, ge=2, description="persons with fewer earlier orders are compared with all orders of the period instead"
    )
    velocity_orders_per_day: int = Field(4, ge=2, description="this many orders by one person within 24 hours (sliding)")
    max_devices_per_day: int = Field(
        4, ge=1, description="more distinct devices than this for one person in a UTC day (shared devices not counted)"
    )
    max_persons_per_identifier: int = Field(
        2, ge=1, description="an order placed with a shared device or email that more persons than this used in the window"
    )
    max_returned_orders: int = Field(
        2, ge=1, description="more returned or cancelled orders than this by one person in the window"
    )


class ScoringSettings(_Strict):
    leads: LeadSettings = Field(default_factory=LeadSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    segments: SegmentSettings = Field(default_factory=SegmentSettings)
    recommendations: RecommendationSettings = Field(default_factory=RecommendationSettings)
    anomalies: AnomalySettings = Field(default_factory=AnomalySettings)


class MonitorSettings(_Strict):
    """Drift, data-quality and realised-performance checks of ``presage monitor`` (see docs/monitoring.md)."""

    psi_warn: float = Field(0.1, gt=0, description="population stability index from which a feature or score is 'warn'")
    psi_alert: float = Field(0.25, gt=0, description="population stability index from which it is 'alert'")
    bins: int = Field(10, ge=2, le=100, description="quantile bins of a numeric feature or score, cut on the reference")
    max_categories: int = Field(
        20, ge=1, description="a text feature keeps its most frequent reference values as bins; the rest share one"
    )
    max_reference_rows: int = Field(
        2_000_000, ge=1000, description="reference rows kept at most (a deterministic sample of persons)"
    )
    quality_days: int = Field(
        1, ge=1, description="ingestion batches of this many days before the monitor time are summarised and "
        "checked; match the schedule (1 for a daily monitor) so that each batch is judged once"
    )
    expectation_success_warn: float = Field(
        0.99, gt=0, le=1, description="share of a batch's rows meeting an expectation below which it is 'warn'"
    )
    expectation_success_alert: float = Field(
        0.95, gt=0, le=1, description="share of a batch's rows meeting an expectation below which it is 'alert'"
    )
    metric_drop_warn: float = Field(
        0.02, ge=0, description="realised primary metric (AUC, spend Gini) this far below the holdout's: 'warn'"
    )
    metric_drop_alert: float = Field(
        0.05, ge=0, description="realised primary metric this far below the holdout's: 'alert'"
    )

    @model_validator(mode="after")
    def _ordered(self) -> MonitorSettings:
        if self.psi_alert < self.psi_warn:
            raise ValueError(f"psi_alert ({self.psi_alert}) must be >= psi_warn ({self.psi_warn})")
        if self.expectation_success_alert > self.expectation_success_warn:
            raise ValueError("expectation_success_alert must be <= expectation_success_warn")
        if self.metric_drop_alert < self.metric_drop_warn:
            raise ValueError("metric_drop_alert must be >= metric_drop_warn")
        return self


class RetentionSettings(_Strict):
    """How long raw behavioural events are kept (``presage retention``, docs/privacy.md)."""

    raw_event_days: int = Field(
        395, gt=0, description="bronze rows and raw drop files of the sources below older than this are deleted "
        "(395 days: the 13 months commonly allowed for tracking data)"
    )
    sources: list[str] = Field(
        default_factory=lambda: ["web_events", "campaign_events", "social_events"],
        description="raw sources whose old events are deleted (raw sources with an event time)",
    )


class StreamSettings(_Strict):
    """Real-time events (``presage stream``, docs/streaming.md)."""

    source: Literal["folder", "kafka"] = Field(
        "folder", description="folder: JSON-lines files landing in <home>/stream/<source>/; kafka: topics below"
    )
    trigger_seconds: float = Field(1.0, gt=0, description="micro-batch interval")
    max_files_per_trigger: int = Field(100, ge=1, description="folder source: files read per micro-batch at most")
    max_offsets_per_trigger: int = Field(
        100_000, ge=1, description="Kafka source: messages read per micro-batch at most (a first start or a catch-up "
        "after downtime comes in batches of this size, not all at once)"
    )
    shuffle_partitions: int = Field(
        2, ge=1, description="spark.sql.shuffle.partitions of the stream's application: a micro-batch is small and each partition is a task"
    )
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="kafka source: brokers")
    kafka_topics: dict[str, str] = Field(
        default_factory=lambda: {"web_events": "presage.web_events", "campaign_events": "presage.campaign_events"},
        description="kafka source: topic of each streamed source (JSON value per event)",
    )
    checkpoint: str | None = Field(None, description="checkpoint root (default <home>/stream/_checkpoints)")


class Settings(_Strict):
    """The whole configuration; ``Settings()`` is the documented default."""

    home: str | None = Field(
        None, description=f"lakehouse root (local path or URI); ${HOME_ENV} overrides it"
    )
    spark: SparkSettings = Field(default_factory=SparkSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    feast: FeastSettings = Field(default_factory=FeastSettings)
    horizon_days: int = Field(90, gt=0, description="prediction horizon of the labels")
    models: ModelSettings = Field(default_factory=ModelSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    channels: dict[str, ChannelSettings] = Field(default_factory=_default_channels)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    monitoring: MonitorSettings = Field(default_factory=MonitorSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)

    @field_validator("channels")
    @classmethod
    def _channels_not_empty(cls, value: dict[str, ChannelSettings]) -> dict[str, ChannelSettings]:
        if not value:
            raise ValueError("at least one channel is required")
        return value

    @property
    def root(self) -> str:
        """Where the lakehouse lives: $PRESAGE_HOME, else ``home``, else ./lakehouse."""
        chosen = os.environ.get(HOME_ENV) or self.home or DEFAULT_HOME
        if "://" in chosen:
            return chosen.rstrip("/")
        return str(Path(chosen).expanduser().resolve())


def _format_errors(source: str, error: ValidationError) -> str:
    lines = [f"invalid configuration in {source}:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load and validate a YAML configuration file; ``None`` gives the defaults.

    Raises:
        ConfigError: the file is missing, is not YAML, or has unknown or invalid keys.
    """
    if path is None:
        return Settings()
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"configuration file not found: {file}")
    try:
        data: Any = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {file} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {file} must hold a mapping at the top level")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(str(file), exc)) from exc
