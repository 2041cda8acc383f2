"""The ``presage`` command: one subcommand per job, each a thin call into the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from presage.config import ConfigError, Settings, load_settings
from presage.lakehouse import Lakehouse

log = logging.getLogger("presage")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="presage", description=__doc__)
    parser.add_argument("--config", help="YAML configuration file (default: built-in defaults)")
    parser.add_argument("--log-level", default="INFO")
    # The same options after the subcommand, so `jobs/<job>.py --config x` works under spark-submit.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--log-level", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", parents=[common], help="write realistic raw drops (and their ground truth)")
    gen.add_argument("--customers", type=int, default=10_000)
    gen.add_argument("--days", type=int, default=365)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--end-date", help="last day of the generated window, YYYY-MM-DD (default 2026-10-31)")
    gen.add_argument("--dirty-rate", type=float, default=0.02, help="share of dirty rows per source")

    ing = sub.add_parser("ingest", parents=[common], help="validate raw drops into bronze Delta tables and quarantine")
    ing.add_argument("--source", action="append", help="only this source (repeatable); default: all present")

    sub.add_parser("build-profiles", parents=[common], help="resolve identities into the silver layer")
    feat = sub.add_parser("build-features", parents=[common], help="point-in-time feature snapshots into gold (new dates only)")
    feat.add_argument("--as-of", help="compute (or recompute) the one snapshot of this date, YYYY-MM-DD: data before its 00:00 UTC")
    feat.add_argument("--from", dest="start", help="backfill: recompute the grid dates from this date (needs --to)")
    feat.add_argument("--to", dest="end", help="backfill: recompute the grid dates up to this date, inclusive")
    mat = sub.add_parser("materialize", parents=[common], help="newest gold snapshot of each Feast view into the online store")
    mat.add_argument("--as-of", help="materialize the newest snapshot at or before this date, YYYY-MM-DD (default: now)")
    mat.add_argument("--view", action="append", help="only this feature view (repeatable)")
    ts = sub.add_parser("training-set", parents=[common], help="point-in-time training data from Feast's historical retrieval")
    ts.add_argument("--entities", required=True, help="entity rows (customer_id, event_timestamp, labels...): Delta, CSV, JSON lines or Parquet")
    ts.add_argument("--service", required=True, help="Feast feature service, e.g. purchase_propensity")
    ts.add_argument("--output", required=True, help="Delta table written (replaced) with the training set")
    tr = sub.add_parser("train", parents=[common], help="train, evaluate and register a model (xgboost.spark, MLflow)")
    tr.add_argument("--model", required=True, help="purchase_propensity, churn_risk, expected_spend, channel_response, or a custom goal's name with --labels")
    tr.add_argument("--labels", help="custom goal: label table (customer_id, event_timestamp, label 0/1): Delta, CSV, JSON lines or Parquet")
    tr.add_argument("--as-of", help="backtest: train exactly as on this date, YYYY-MM-DD (no data from its 00:00 UTC on is read)")
    sc = sub.add_parser("score", parents=[common], help="score every person; write lead_priority, budget_allocation, segments, recommendations, anomalies")
    sc.add_argument("--as-of", help="backtest: score as on this date, YYYY-MM-DD (its snapshot, the models trained by then)")
    sv = sub.add_parser("serve", parents=[common], help="HTTP: a person's current scores and next best action from the online store")
    sv.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=6570)
    er = sub.add_parser("erase", parents=[common], help="GDPR erasure: remove a person from every table, raw file, the online store and MLflow artifacts, with an audit row")
    er.add_argument("--customer", required=True, help="the person: a CRM customer id, an email address, or a person id (as in gold and outputs)")
    rt = sub.add_parser("retention", parents=[common], help="delete raw events older than N days from bronze and the raw drops, then vacuum")
    rt.add_argument("--days", type=int, help="keep this many days (default: retention.raw_event_days of the config, 395)")
    rp = sub.add_parser("report", parents=[common], help="one HTML page of charts: model curves, leads, budget, segments, drift")
    rp.add_argument("--as-of", help="the score date to report, YYYY-MM-DD (default: the newest scored)")
    rp.add_argument("--output", help="where to write the page (default: <home>/reports/presage_<score_date>.html)")
    mo = sub.add_parser("monitor", parents=[common], help="drift (PSI), data-quality history, realised performance and alerts")
    mo.add_argument("--as-of", help="monitor as on this date, YYYY-MM-DD (the data, scores and models known then)")
    mo.add_argument("--fail-on-alert", action="store_true", help="exit with code 3 when any check is at 'alert'")
    st = sub.add_parser("stream", parents=[common], help="real time: web and campaign events to bronze, fresh activity features and the online store")
    st.add_argument("--available-now", action="store_true", help="process the events that have landed, then stop (default: run until stopped)")
    sub.add_parser("where", parents=[common], help="print where the lakehouse and its tables are")
    return parser


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from presage.generate.params import GenParams
    from presage.generate.run import generate
    from presage.session import get_spark

    extra = {"end_date": dt.date.fromisoformat(args.end_date)} if args.end_date else {}
    params = GenParams(args.customers, args.days, args.seed, dirty_rate=args.dirty_rate, **extra)
    spark = get_spark("presage-generate", settings)
    lake = Lakehouse.of(settings)
    manifest = generate(spark, params, lake)
    for source, info in manifest["sources"].items():
        print(f"{source:16s} {info['rows']:>10,d} rows  {sum(info['dirty'].values()):>7,d} dirty  {len(info['drops'])} drops")
    print(f"raw drops: {lake.path('raw')}\nground truth: {lake.truth}")
    return 0


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from presage.ingest.job import run
    from presage.session import get_spark

    spark = get_spark("presage-ingest", settings)
    results = run(spark, settings, args.source)
    for r in results:
        print(f"{r.source:16s} batch {r.batch_seq:>3d}  files {r.files:>3d}  bronze {r.bronze_rows:>9,d}  quarantine {r.quarantined_rows:>7,d}")
    if not results:
        print("nothing new to ingest")
    return 0


def _build_profiles(settings: Settings) -> int:
    from presage.profiles.job import build_silver
    from presage.session import get_spark

    spark = get_spark("presage-build-profiles", settings)
    result = build_silver(spark, settings, Lakehouse.of(settings))
    r = result.identity
    print(f"identity map: {r.persons:,d} persons, {r.identifiers:,d} identifiers ({r.shared:,d} shared), {r.merges:,d} merges, {r.changed:,d} rows changed")
    print(f"silver ({'full build' if result.full else 'incremental'}, {result.persons_in_scope:,d} persons touched):")
    for table, rows in result.written.items():
        print(f"  {table:26s} {rows:>10,d} rows written")
    return 0


def _build_features(args: argparse.Namespace, settings: Settings) -> int:
    from presage.features.calendar import parse_date
    from presage.features.job import build_features
    from presage.session import get_spark

    if (args.start is None) != (args.end is None):
        raise ValueError("a backfill needs both --from and --to")
    if args.as_of and args.start:
        raise ValueError("--as-of and --from/--to cannot be combined")
    as_of = parse_date(args.as_of) if args.as_of else None
    backfill = (parse_date(args.start), parse_date(args.end)) if args.start else None
    spark = get_spark("presage-build-features", settings)
    lake = Lakehouse.of(settings)
    result = build_features(spark, settings, lake, as_of, backfill)
    if not result.dates:
        print("features: every snapshot date is already built (use --from/--to to recompute)")
        return 0
    print(f"features: {len(result.dates)} snapshot dates {result.dates[0]} .. {result.dates[-1]}, {result.feature_rows:,d} rows")
    print(f"extra CRM attribute columns: {', '.join(result.attribute_columns) or 'none'}")
    print(f"gold: {lake.gold('customer_features')}  {lake.gold('customer_attributes')}")
    return 0


def _materialize(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from presage.features.calendar import parse_date
    from presage.featurestore.materialize import materialize
    from presage.featurestore.store import open_store
    from presage.session import get_spark

    as_of = None
    if args.as_of:
        as_of = dt.datetime.combine(parse_date(args.as_of), dt.time.max, tzinfo=dt.UTC)
    spark = get_spark("presage-materialize", settings)
    store = open_store(settings)
    for r in materialize(spark, store, as_of, args.view):
        rate = r.rows / r.seconds if r.seconds else 0.0
        print(f"{r.view:22s} snapshot {r.snapshot}  {r.rows:>10,d} rows  {r.seconds:6.1f} s  {rate:>9,.0f} rows/s  ({r.writer})")
    print(f"online store: {store.config.online_store.type}")
    return 0


def _training_set(args: argparse.Namespace, settings: Settings) -> int:
    from presage.featurestore.store import open_store
    from presage.featurestore.training import read_entities, training_set
    from presage.session import get_spark

    spark = get_spark("presage-training-set", settings)
    rows = training_set(open_store(settings), read_entities(spark, args.entities), args.service)
    rows.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(args.output)
    written = spark.read.format("delta").load(args.output)
    print(f"training set: {written.count():,d} rows x {len(written.columns)} columns -> {args.output}")
    return 0


def _train(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from presage.features.calendar import parse_date
    from presage.models.train import train
    from presage.session import get_spark

    as_of = dt.datetime.combine(parse_date(args.as_of), dt.time.min, tzinfo=dt.UTC) if args.as_of else None
    spark = get_spark("presage-train", settings)
    r = train(spark, settings, args.model, args.labels, as_of)
    print(f"{r.model}: {r.training_rows:,d} training rows, {r.holdout_rows:,d} holdout rows, {r.trees} trees")
    for key in ("auc", "pr_auc", "log_loss", "brier", "top_decile_lift", "lift_quality_pct", "top_decile_revenue_capture",
                "mae", "rmse", "spearman", "gini"):
        if key in r.metrics:
            base = f"   (baseline {r.baseline[key]:.4f})" if key in r.baseline else ""
            print(f"  {key:28s} {r.metrics[key]:10.4f}{base}")
    for attribute, item in r.fairness.items():
        flag = "  FLAGGED (< 0.8)" if item["flagged"] else ""
        print(f"  fairness {attribute:19s} selection-rate ratio {item['selection_rate_ratio']:.2f}, TPR gap {item['true_positive_rate_gap']:.2f}{flag}")
    print(f"MLflow run {r.run_id}, registered version {r.version}: {r.decision}")
    return 0


def _score(args: argparse.Namespace, settings: Settings) -> int:
    from presage.features.calendar import parse_date
    from presage.scoring.job import run
    from presage.session import get_spark

    spark = get_spark("presage-score", settings)
    r = run(spark, settings, parse_date(args.as_of) if args.as_of else None)
    lake = Lakehouse.of(settings)
    print(f"scored {r.score_date} from the feature snapshot of {r.feature_snapshot:%Y-%m-%d}, models "
          + ", ".join(f"{goal} v{version}" for goal, version in r.models.items()))
    for table, rows in r.rows.items():
        print(f"  {table:18s} {rows:>10,d} rows  {lake.output(table)}")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from presage.scoring.serve import app

    uvicorn.run(app(settings), host=args.host, port=args.port, log_level="warning")
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from presage.features.calendar import parse_date
    from presage.reporting.job import run
    from presage.session import get_spark

    spark = get_spark("presage-report", settings)
    r = run(spark, settings, parse_date(args.as_of) if args.as_of else None, args.output)
    print(f"report of {r.data.score_date}: {len(r.charts)} charts -> {r.path}")
    for note in r.notes:
        print(f"  not drawn: {note}")
    return 0


def _stream(args: argparse.Namespace, settings: Settings) -> int:
    from presage.session import get_spark
    from presage.streaming.job import run

    spark = get_spark("presage-stream", settings)
    lake = Lakehouse.of(settings)
    where = lake.stream("incoming", "<source>") if settings.stream.source == "folder" else settings.stream.kafka_bootstrap_servers
    print(f"streaming web_events and campaign_events from {where} every {settings.stream.trigger_seconds:g} s", flush=True)
    run(spark, settings, args.available_now)
    return 0


def _monitor(args: argparse.Namespace, settings: Settings) -> int:
    from presage.features.calendar import parse_date
    from presage.monitoring.job import run
    from presage.session import get_spark

    spark = get_spark("presage-monitor", settings)
    r = run(spark, settings, parse_date(args.as_of) if args.as_of else None)
    lake = Lakehouse.of(settings)
    snapshot = f"{r.feature_snapshot:%Y-%m-%d}" if r.feature_snapshot else "none"
    print(f"monitor {r.monitor_date}: feature snapshot {snapshot}, newest scores {r.score_date or 'none'}")
    for table, rows in r.rows.items():
        print(f"  {table:12s} {rows:>7,d} rows  {lake.monitoring(table)}")
    alerts = [a for a in r.alerts if a.severity == "alert"]
    print(f"{len(alerts)} alert(s), {len(r.alerts) - len(alerts)} warning(s)")
    models: dict[tuple[str, str], list[str]] = {}  # one line per finding, however many models share it
    for a in alerts:
        models.setdefault((a.check, a.message), []).extend([a.model] if a.model else [])
    for (check, message), names in models.items():
        print(f"ALERT {check}{' [' + ', '.join(names) + ']' if names else ''} {message}")
    if alerts and args.fail_on_alert:
        return 3
    return 0


def _erase(args: argparse.Namespace, settings: Settings) -> int:
    from presage.erasure import erase
    from presage.session import get_spark

    spark = get_spark("presage-erase", settings)
    r = erase(spark, settings, args.customer)
    print(f"erasure {r.erasure_id}: {r.status}, subject {r.subject_hash[:16]}..., {r.persons} person id(s)")
    for name, rows in sorted(r.rows_removed.items()):
        print(f"  {name:60s} {rows:>8,d} removed")
    print(f"  vacuumed {len(r.vacuumed)} table(s); audit: {Lakehouse.of(settings).audit('erasures')}")
    for note in r.notes:
        print(f"  note: {note}")
    if r.status == "ambiguous":
        print("presage erase: nothing erased; see the note above", file=sys.stderr)
        return 2
    return 0


def _retention(args: argparse.Namespace, settings: Settings) -> int:
    from presage.retention import run
    from presage.session import get_spark

    spark = get_spark("presage-retention", settings)
    r = run(spark, settings, args.days)
    print(f"retention {r.days} days: events before {r.cutoff:%Y-%m-%d %H:%M} UTC removed")
    for name, rows in sorted(r.rows_removed.items()):
        print(f"  {name:28s} {rows:>10,d} rows")
    print(f"  {len(r.files_removed)} raw file(s) removed, {len(r.vacuumed)} table(s) vacuumed; audit: {Lakehouse.of(settings).audit('retention')}")
    return 0


def _where(settings: Settings) -> int:
    lake = Lakehouse.of(settings)
    print(f"lakehouse:   {lake.root}")
    print(f"raw drops:   {lake.path('raw')}/<source>/<drop>/")
    print(f"bronze:      {lake.path('bronze')}/<source>  (Delta; quarantine in {lake.quarantine})")
    print(f"quality:     {lake.quality_results}  (Great Expectations results per batch)")
    print(f"silver:      {lake.path('silver')}/<table>  (identity_map, customer_profile, customer_profile_history, clean facts)")
    print(f"gold:        {lake.path('gold')}/<table>  (customer_features, customer_attributes: snapshots keyed by customer_id, event_timestamp)")
    print(f"feast:       {lake.path('feast')}  (registry.db, online.db of feature_repo/feature_store.yaml)")
    print(f"models:      {lake.path('mlflow')}  (MLflow tracking database and artifacts; training sets in {lake.path('models')})")
    print(f"outputs:     {lake.path('outputs')}/<table>  (lead_priority, budget_allocation, segments, segment_members, recommendations, anomalies, score_thresholds; by score_date)")
    print(f"monitoring:  {lake.path('monitoring')}/<table>  (drift, quality, performance, alerts; by monitor_date)")
    print(f"reports:     {lake.path('reports')}/presage_<score_date>.html  (presage report: charts of a score date)")
    print(f"truth:       {lake.truth}  (generator ground truth, for evaluation only)")
    if "://" not in lake.root and Path(lake.root).is_dir():
        _summary(settings, lake)
    return 0


def _summary(settings: Settings, lake: Lakehouse) -> None:
    """What the pipeline has written so far: tables and rows, champion models, the newest report."""
    from presage.scoring.predict import GOALS
    from presage.summary import champions, delta_tables, newest_report

    print("\nDelta tables (rows, version):")
    for table in delta_tables(lake.root):
        print(f"  {table.name:45s} {table.rows:>12,d}  v{table.version}")
    print("champion models (MLflow run, holdout metrics):")
    for model in champions(settings, GOALS):
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in model.metrics.items())
        print(f"  {model.goal:22s} v{model.version:4s} run {model.run_id}  {metrics}")
    print(f"report: {newest_report(lake) or 'none yet (presage report)'}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"presage: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "generate":
            return _generate(args, settings)
        if args.command == "ingest":
            return _ingest(args, settings)
        if args.command == "build-profiles":
            return _build_profiles(settings)
        if args.command == "build-features":
            return _build_features(args, settings)
        if args.command == "materialize":
            return _materialize(args, settings)
        if args.command == "training-set":
            return _training_set(args, settings)
        if args.command == "train":
            return _train(args, settings)
        if args.command == "score":
            return _score(args, settings)
        if args.command == "serve":
            return _serve(args, settings)
        if args.command == "erase":
            return _erase(args, settings)
        if args.command == "retention":
            return _retention(args, settings)
        if args.command == "report":
            return _report(args, settings)
        if args.command == "monitor":
            return _monitor(args, settings)
        if args.command == "stream":
            return _stream(args, settings)
        return _where(settings)
    except (ValueError, FileNotFoundError, LookupError) as exc:
        print(f"presage {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
