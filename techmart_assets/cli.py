"""`techmart`: the command line of the lakehouse (data generator, demo build)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from techmart_assets.generator import GeneratorConfig
from techmart_assets.generator import cli as generator_cli
from techmart_assets.partitions import HISTORY_START, REFERENCE_HISTORY_END
from techmart_assets.settings import Settings


def project_instance(settings: Settings) -> dg.DagsterInstance:
    """The project's Dagster instance (DAGSTER_HOME, default ./.dagster_home), the one `make ui` shows;
    a new home gets the project's instance configuration."""
    from techmart_assets.instance_storage import write_instance_config

    if not (settings.dagster_home / "dagster.yaml").exists():
        write_instance_config(settings.dagster_home)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return dg.DagsterInstance.get()


def build_range(settings: Settings, first: str, last: str, job: str | None = None) -> int:
    """Materialize a job for first..last as one run (one Spark session) on the project instance."""
    from techmart_assets.definitions import defs
    from techmart_assets.jobs import LAKEHOUSE_JOB

    result = defs.resolve_job_def(job or LAKEHOUSE_JOB).execute_in_process(
        instance=project_instance(settings),
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        # A range run records one materialization per day and asset: at DEBUG that floods the terminal.
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        raise_on_error=False,
    )
    print(f"\nRun {result.run_id} {'succeeded' if result.success else 'FAILED'} for {first}..{last}.")
    # Each table's last materialization of the run: a range run's totals are on its last day.
    tables = {
        event.materialization.asset_key.to_user_string(): event.materialization
        for event in result.get_asset_materialization_events()
    }
    for key, materialization in sorted(tables.items()):
        metadata = materialization.metadata
        if "dagster/row_count" in metadata and "delta_version" in metadata:
            rows, version = metadata["dagster/row_count"].value, metadata["delta_version"].value
            print(f"  {key:36s} {rows:>10,} rows   Delta version {version}")
        else:
            print(f"  {key:36s} {'(view)' if 'staging' in key else 'materialized':>15s}")
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    for evaluation in failed:
        print(
            f"  check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} "
            f"{'WARNED' if evaluation.severity == dg.AssetCheckSeverity.WARN else 'FAILED'}"
        )
    return 0 if result.success else 1


def run_build(args: argparse.Namespace) -> int:
    from techmart_assets.jobs import DAILY_JOB, LAKEHOUSE_JOB

    job = DAILY_JOB if args.with_report else LAKEHOUSE_JOB
    return build_range(Settings.from_env(), args.start, args.end, job)


def run_dbt_command(args: argparse.Namespace) -> int:
    """dbt on the lakehouse, in this process: parse and compile need no Spark, the rest gets one."""
    from techmart_assets.gold.dbt_runtime import dbt_subprocess, run_dbt

    settings = Settings.from_env()
    if not args.dbt_args or args.dbt_args[0] in ("parse", "compile", "ls", "list", "deps", "clean", "debug"):
        return dbt_subprocess(args.dbt_args, settings).returncode
    from dagster_pyspark.resources import spark_session_from_config

    from techmart_assets.resources import spark_config

    spark = spark_session_from_config(spark_config(settings))
    try:
        run_dbt(spark, args.dbt_args, settings.lakehouse_root, settings)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        spark.stop()
    return 0


def run_kafka(args: argparse.Namespace) -> int:
    from techmart_assets.streaming import broker

    config = broker.BrokerConfig.from_settings(Settings.from_env())
    if args.action == "start":
        pid = broker.start(config)
        created = broker.ensure_topics(config.bootstrap)
        print(f"Kafka broker pid {pid} answering on {config.bootstrap} (data and logs in {config.home})")
        print(
            f"topics: {', '.join(f'{t} ({n} partitions)' for t, n in broker.TOPICS.items())}"
            + (f"; created {', '.join(created)}" if created else "")
        )
    elif args.action == "stop":
        stopped = broker.stop(config)
        print("Kafka broker stopped" if stopped else "no Kafka broker of this project is running")
    else:
        pid = broker.running_pid(config)
        answering = broker.answers(config.bootstrap, timeout=3.0)
        print(f"pid {pid or '-'}; {config.bootstrap} {'answers' if answering else 'does not answer'}")
        return 0 if pid and answering else 1
    return 0


def run_stream(args: argparse.Namespace) -> int:
    from techmart_assets.streaming import broker, producer

    settings = Settings.from_env()
    count = max(1, round(args.rate * args.duration))
    history = producer.read_history(_table_path(settings, "silver/transactions"))
    web_rate = 2 * args.rate if args.web_rate is None else args.web_rate
    planned = producer.plan(
        count,
        seed=args.seed,
        fraud_rate=args.fraud_rate,
        history=history,
        web_events_per_sale=web_rate / args.rate,
    )
    labels = args.labels or f"{settings.lakehouse_root}/streaming/labels-{time.strftime('%Y%m%dT%H%M%S')}.csv"
    producer.write_labels(planned.labels, Path(labels))
    print(
        f"sending {len(planned.messages):,} transactions at {args.rate:g}/s and {len(planned.web_events):,} "
        f"web events to {settings.kafka_bootstrap} ({len(planned.labels)} fraud rows injected, labels in "
        f"{labels})"
    )
    try:
        result = producer.send(planned, settings.kafka_bootstrap, args.rate)
    except broker.BrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"sent {result.sent:,} transactions and {result.web_sent:,} web events, failed {result.failed:,}"
        + (f": {result.errors}" if result.errors else "")
    )
    return 0 if result.failed == 0 else 1


def run_fraud(args: argparse.Namespace) -> int:
    """The streaming queries in the foreground, the code the `fraud_stream` job runs, until Ctrl-C."""
    import signal

    from dagster_pyspark.resources import spark_session_from_config

    from techmart_assets.resources import spark_config
    from techmart_assets.streaming.runner import StreamOptions, StreamRunner, StreamTables

    settings = Settings.from_env()
    # `kill <pid>` stops as cleanly as Ctrl-C: the queries finish their micro-batch first.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    spark = spark_session_from_config(spark_config(settings))
    options = StreamOptions(
        ingestion=not args.no_ingestion,
        live_sales=not args.no_live_sales,
        live_features=not args.no_live_features,
    )
    runner = StreamRunner(
        spark, StreamTables(settings.lakehouse_root), settings.kafka_bootstrap, options, print
    )
    print(f"alerts in {runner.tables.fraud.alerts}; Ctrl-C stops cleanly")
    try:
        runner.run(duration_s=args.duration)
    except KeyboardInterrupt:
        print("interrupted: the queries were stopped after their last commit")
    finally:
        spark.stop()
    return 0


def stream_demo(settings: Settings, rate: float, seconds: float) -> int:
    """The project's broker (started if needed, stopped after if started here), `techmart stream`'s
    traffic sent while the `fraud_stream` job runs on the project instance, then what it found."""
    import threading
    from collections import Counter
    from datetime import UTC, datetime

    from dagster_pyspark.resources import spark_session_from_config
    from pyspark.sql import functions as F

    from techmart_assets.definitions import defs
    from techmart_assets.resources import spark_config
    from techmart_assets.streaming import broker, producer
    from techmart_assets.streaming.job import FRAUD_JOB, read_health, stream_table_events
    from techmart_assets.streaming.runner import StreamTables, describe_cities

    config = broker.BrokerConfig.from_settings(settings)
    started_here = broker.running_pid(config) is None
    if started_here:
        broker.start(config)
    try:
        broker.ensure_topics(config.bootstrap)
        # The clean sales repeat the customers' purchases in silver (their usual basket).
        history = producer.read_history(_table_path(settings, "silver/transactions"))
        planned = producer.plan(round(rate * seconds), history=history, web_events_per_sale=2.0)
        labels = producer.write_labels(
            planned.labels, Path(settings.lakehouse_root) / "streaming" / "labels.csv"
        )
        print(
            f"broker on {config.bootstrap}; sending {len(planned.messages):,} transactions at {rate:g}/s "
            f"and {len(planned.web_events):,} web events ({len(planned.labels)} fraud rows, labels in "
            f"{labels})"
        )
        sent: list[producer.StreamResult] = []
        since = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)  # Spark's naive UTC
        sender = threading.Thread(
            target=lambda: sent.append(producer.send(planned, config.bootstrap, rate)), daemon=True
        )
        sender.start()
        instance = project_instance(settings)
        # Long enough to start (a JVM, the queries' first batches), read all traffic and stop cleanly.
        run_config = {"ops": {"run_streaming_queries": {"config": {"duration_s": seconds + 60}}}}
        result = defs.resolve_job_def(FRAUD_JOB).execute_in_process(
            instance=instance,
            run_config={**run_config, "loggers": {"console": {"config": {"log_level": "INFO"}}}},
            raise_on_error=False,
        )
        sender.join()
        tables = StreamTables(settings.lakehouse_root)
        health = read_health(tables.health_file)  # the run's last heartbeat, written as it stopped
        # What the sensor does on its ticks when the daemon runs: the new rows as materializations.
        for event in stream_table_events(tables, {}, health):
            instance.report_runless_asset_event(event)
        spark = spark_session_from_config(spark_config(settings))
        try:
            # This traffic's rows only: the tables keep earlier runs' too.
            read = spark.read.format("delta").load
            ours = F.col("transaction_id").isin([m["transaction_id"] for m in planned.messages])
            alerts = read(tables.fraud.alerts).where(ours).collect()
            dead = read(tables.fraud.dead_letters).where(F.col("produced_at") >= since).count()
            live_sales = read(tables.table("gold", "live_sales_by_minute"))
            closed = live_sales.where(F.col("minute_start") >= since).select("minute_start").distinct()
            minutes = closed.count()
            streamed = read(tables.table("bronze", "transactions")).where(ours).count()
            live = read(tables.live.features).where(F.col("updated_at") >= since)
            live_customers = live.count()
            example = live.where("suggested_category IS NOT NULL").orderBy(F.desc("session_events")).first()
            funnel = read(tables.live.funnel).where(F.col("minute_start") >= since)
            funnel_totals = funnel.agg(F.sum("sessions"), F.sum("purchases")).first()
            event_ids = [e["event_id"] for e in planned.web_events]
            web_streamed = (
                read(tables.table("bronze", "web_events")).where(F.col("event_id").isin(event_ids)).count()
            )
        finally:
            spark.stop()
    finally:
        if started_here:
            broker.stop(config)
    fired = {(a.transaction_id, a.rule_id) for a in alerts}
    injected = {label["record_id"] for label in planned.labels}
    print(
        f"\nRun {result.run_id} {'succeeded' if result.success else 'FAILED'}: sent {sent[0].sent:,} "
        f"transactions and {sent[0].web_sent:,} web events (failed {sent[0].failed}), bronze got "
        f"{streamed:,} and {web_streamed:,} of them, {dead} dead letters, "
        f"{minutes} closed minutes of live sales"
    )
    if health and (cities := describe_cities(health)):
        print(f"  {cities}")
    print(
        f"  live features of {live_customers:,} customers in {tables.live.features} (and on the "
        f"customer-features topic); the live funnel counted {funnel_totals[0] or 0:,} sessions and "
        f"{funnel_totals[1] or 0:,} purchases"
    )
    if example is not None:
        print(
            f"  for example `techmart customer show {example.customer_id}`: {example.suggested_category}, "
            f"because the customer {example.suggestion}"
        )
    by_rule = Counter(rule for _, rule in fired)
    on_fraud = Counter(rule for t, rule in fired if t in injected)
    print(f"  {len(alerts)} fraud alerts: " + ", ".join(f"{r} {n}" for r, n in sorted(by_rule.items())))
    print(
        f"  {len({t for t, _ in fired} & injected)} of {len(injected)} injected fraud transactions alerted "
        f"(velocity bursts alert once, on the purchase that crosses the threshold)"
    )
    if fired:
        print(
            f"  precision (alerts on injected fraud / all): {sum(on_fraud.values()) / len(fired):.3f}; "
            + ", ".join(f"{r} {on_fraud[r] / n:.3f}" for r, n in sorted(by_rule.items()))
        )
    return 0 if result.success and sent and sent[0].failed == 0 else 1


def run_demo(args: argparse.Namespace) -> int:
    from techmart_assets.jobs import DAILY_JOB

    settings = Settings.from_env()
    root = settings.lakehouse_root
    generate_args = build_parser().parse_args(["generate", "--out", f"{root}/raw_data"])
    generated = generate_args.func(generate_args)
    if generated:
        return generated
    # The history as one backfill run, then the last day as the daily schedule runs it: every layer
    # from the drops to the report.
    last = date.fromisoformat(REFERENCE_HISTORY_END)
    history_end = (last - timedelta(days=1)).isoformat()
    print(f"\n== History {HISTORY_START}..{history_end}: bronze, silver and gold as one run")
    built = build_range(settings, HISTORY_START, history_end)
    if built:
        return built
    print(f"\n== The daily run for {last}: every layer and the report, as the schedule runs it")
    built = build_range(settings, last.isoformat(), last.isoformat(), job=DAILY_JOB)
    if built:
        return built
    print(f"\n== Live: the Kafka broker, {args.stream_seconds:g} s of transactions with fraud, fraud_stream")
    streamed = stream_demo(settings, rate=args.stream_rate, seconds=args.stream_seconds)
    print(
        "\nWhere to look:\n"
        f"  raw drops        {root}/raw_data (labels.csv: what was injected on purpose)\n"
        f"  Delta tables     {root}/bronze/<source>, {root}/silver/<table>, {root}/gold/<table>\n"
        f"  rejected rows    {root}/silver/<source>_quarantine (rule and reason per row)\n"
        f"  daily report     {root}/reports/{last}/report.html (and chart.png)\n"
        f"  fraud alerts     {root}/gold/fraud_alerts (also on the fraud-alerts topic); dead letters in "
        f"{root}/gold/fraud_dead_letters; per-minute sales in {root}/gold/live_sales_by_minute\n"
        f"  live features    {root}/gold/customer_live_features (`techmart customer show ID`); the funnel "
        f"per minute in {root}/gold/live_funnel_by_minute\n"
        f"  Dagster instance {settings.dagster_home}\n"
        "  the UI           `make ui`, then open http://127.0.0.1:3000 (the demo's runs are in Runs)"
    )
    return streamed


def _table_path(settings: Settings, name: str) -> str:
    from techmart_assets.resources import build_lakehouse_resource
    from techmart_assets.tables import split_name

    return build_lakehouse_resource(settings).table_path(*split_name(name))


def run_customer(args: argparse.Namespace) -> int:
    """A customer's live features and next-best-category suggestion (gold/customer_live_features)."""
    from techmart_assets.streaming.live_features import describe_customer, read_customer

    settings = Settings.from_env()
    path = _table_path(settings, "gold/customer_live_features")
    row = read_customer(path, args.customer_id)
    if row is None:
        print(
            f"no live features for {args.customer_id} in {path}: the customer has not been seen on the "
            "web-events topic since the streaming job (`techmart fraud run`, or the fraud_stream job) "
            "started following it",
            file=sys.stderr,
        )
        return 1
    print(describe_customer(row))
    return 0


def run_table(args: argparse.Namespace) -> int:
    """Time travel for users: a table's versions, an earlier version's rows, a rollback."""
    from techmart_assets import tables
    from techmart_assets.metadata import markdown_table

    settings = Settings.from_env()
    try:
        path = _table_path(settings, args.table)
        if args.action == "history":
            rows = [v.as_row() for v in tables.history(path, args.limit)]
            print(f"{args.table} ({path}), newest first:\n")
            print(markdown_table(rows, list(rows[0])) if rows else "no commits")
        elif args.action == "show":
            as_of = tables.parse_as_of(args.as_of) if args.as_of else None
            version, rows = tables.rows_as_of(path, as_of, args.limit)
            print(f"{args.table} at version {version} (first {rows.num_rows} rows):\n")
            print(rows.to_pandas().to_string(index=False, max_colwidth=40))
        else:
            return _restore(settings, args, path)
    except tables.TableError as error:
        print(f"techmart table: {error}", file=sys.stderr)
        return 2
    return 0


def _restore(settings: Settings, args: argparse.Namespace, path: str) -> int:
    from techmart_assets import tables

    current = tables.open_table(path).version()
    target = tables.open_table(path, args.to)
    print(
        f"{args.table} is at version {current}; version {args.to} has "
        f"{target.to_pyarrow_dataset().count_rows():,} rows. Restoring writes a new version "
        f"{current + 1} with version {args.to}'s contents (the versions between stay readable)."
    )
    if not args.yes and input("Restore? [y/N] ").strip().lower() not in ("y", "yes"):
        print("Nothing changed.")
        return 1
    from dagster_pyspark.resources import spark_session_from_config

    from techmart_assets.resources import spark_config

    spark = spark_session_from_config(spark_config(settings))
    try:
        commit = tables.restore(spark, path, args.to)
    finally:
        spark.stop()
    print(f"{args.table} restored to version {args.to} as version {commit.version}.")
    return 0


def run_checks_report(args: argparse.Namespace) -> int:
    """The asset checks of one day, from the project's Dagster instance, as markdown."""
    from techmart_assets.definitions import defs
    from techmart_assets.quality.history import checks_of_day, report_markdown

    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        print(f"techmart checks report: --date takes YYYY-MM-DD, not {args.date!r}", file=sys.stderr)
        return 2
    with project_instance(Settings.from_env()) as instance:
        checks = checks_of_day(instance, defs.resolve_asset_graph(), day)
    print(report_markdown(day, checks), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="techmart", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    generator_cli.add_parser(sub)

    build = sub.add_parser("build", help="materialize every layer for a range of days, as one run")
    build.add_argument("--start", default=HISTORY_START, help="first day, YYYY-MM-DD")
    build.add_argument("--end", default=REFERENCE_HISTORY_END, help="last day, YYYY-MM-DD")
    build.add_argument(
        "--with-report",
        action="store_true",
        help="run the daily job (the tables and each day's sales report) instead of the tables alone",
    )
    build.set_defaults(func=run_build)

    dbt = sub.add_parser(
        "dbt",
        help="run a dbt command on dbt_project/ with the lakehouse's Spark (e.g. `techmart dbt build`)",
    )
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER, help="the dbt command and its options")
    dbt.set_defaults(func=run_dbt_command)

    kafka = sub.add_parser("kafka", help="start, stop or check the project's Kafka broker (KRaft, one node)")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.set_defaults(func=run_kafka)

    stream = sub.add_parser(
        "stream",
        help="send live transactions (with labelled fraud) to the transactions topic, and the web "
        "sessions around them to the web-events topic",
    )
    stream.add_argument("--rate", type=float, default=100.0, help="transactions per second")
    stream.add_argument(
        "--web-rate",
        type=float,
        help="web events per second, about (default twice --rate; 0: none)",
    )
    stream.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    stream.add_argument(
        "--seed", type=int, default=GeneratorConfig.seed, help="generator seed (the demo data's)"
    )
    stream.add_argument(
        "--fraud-rate", type=float, default=0.002, help="scenarios of each fraud kind per sale"
    )
    stream.add_argument(
        "--labels", help="where to write the labels (default lakehouse/streaming/labels-*.csv)"
    )
    stream.set_defaults(func=run_stream)

    fraud = sub.add_parser(
        "fraud",
        help="the streaming job: fraud detection, bronze ingestion, live sales, live customer features",
    )
    fraud_sub = fraud.add_subparsers(dest="action", required=True)
    fraud_run = fraud_sub.add_parser("run", help="run the streaming queries in the foreground until Ctrl-C")
    fraud_run.add_argument("--duration", type=float, help="stop after this many seconds")
    fraud_run.add_argument("--no-ingestion", action="store_true", help="do not land the topics in bronze")
    fraud_run.add_argument("--no-live-sales", action="store_true", help="no per-minute sales aggregate")
    fraud_run.add_argument(
        "--no-live-features", action="store_true", help="no live customer features from the web-events topic"
    )
    fraud_run.set_defaults(func=run_fraud)

    checks = sub.add_parser("checks", help="asset check results from the project's Dagster instance")
    checks_sub = checks.add_subparsers(dest="action", required=True)
    checks_report = checks_sub.add_parser(
        "report", help="every check of a day with its result, severity, metadata and what it blocked"
    )
    checks_report.add_argument("--date", required=True, help="the day, YYYY-MM-DD")
    checks.set_defaults(func=run_checks_report)

    customer = sub.add_parser("customer", help="a customer's live features and suggestion")
    customer_sub = customer.add_subparsers(dest="action", required=True)
    customer_show = customer_sub.add_parser(
        "show", help="the customer's live features and next-best-category suggestion, with why"
    )
    customer_show.add_argument("customer_id")
    customer_show.set_defaults(func=run_customer)

    table = sub.add_parser("table", help="a table's history, an earlier version's rows, a rollback")
    table_sub = table.add_subparsers(dest="action", required=True)
    history = table_sub.add_parser("history", help="the table's versions, newest first")
    history.add_argument("table", help="LAYER/NAME, e.g. silver/transactions")
    history.add_argument("--limit", type=int, default=20, help="versions to list (default 20)")
    show = table_sub.add_parser("show", help="rows of the table, now or at an earlier version")
    show.add_argument("table", help="LAYER/NAME, e.g. gold/fact_sales")
    show.add_argument("--as-of", help="a version number or an ISO-8601 time (UTC unless it says)")
    show.add_argument("--limit", type=int, default=20, help="rows to print (default 20)")
    restore = table_sub.add_parser("restore", help="roll the table back to an earlier version")
    restore.add_argument("table", help="LAYER/NAME, e.g. silver/transactions")
    restore.add_argument("--to", type=int, required=True, help="the version to bring back")
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    table.set_defaults(func=run_table)

    demo = sub.add_parser("demo", help="generate the reference data set and build the lakehouse from it")
    demo.add_argument("--stream-rate", type=float, default=40.0, help="live transactions per second")
    # Stamped as sent, sales close a minute of live sales once a minute's later sales have come
    # (the watermark): 150 s of traffic close the first minute or two.
    demo.add_argument("--stream-seconds", type=float, default=150.0, help="seconds of live traffic")
    demo.set_defaults(func=run_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
