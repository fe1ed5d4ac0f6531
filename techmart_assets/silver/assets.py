"""The silver assets: each source's trusted table and its quarantine, written and checked in one step.

Every silver asset reads its bronze days, calls its plain transformation, replaces those days (or
MERGEs SCD2 chains), then evaluates its checks on what it wrote. Checks that guard gold block.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from techmart_assets import metadata as md
from techmart_assets.bronze.ingest import columns_beyond_contract
from techmart_assets.delta import (
    PARTITION_COLUMN,
    Commit,
    count_by,
    count_by_each,
    count_rows,
    days_predicate,
    is_delta_table,
    last_commit,
    read_days,
    replace_days,
)
from techmart_assets.partitions import chunk_days, daily_partitions, run_days
from techmart_assets.quality import checks
from techmart_assets.quality.checks import CheckSpec, RowRule
from techmart_assets.resources import SPARK_BATCH_POOL, LakehouseResource
from techmart_assets.silver.batch import SilverBatch, release
from techmart_assets.silver.dimensions import (
    CUSTOMER_DIMENSION,
    PRODUCT_DIMENSION,
    Dimension,
    build_dimension,
)
from techmart_assets.silver.rules import MAX_PLAUSIBLE_AMOUNT_MAD
from techmart_assets.silver.scd2 import REPEATED, UNCHANGED, VERSION
from techmart_assets.silver.transactions import build_transactions
from techmart_assets.silver.web_events import build_web_events
from techmart_assets.sizing import shuffles_for
from techmart_assets.sources import SOURCES, Source

QUARANTINE_WARN_RATE, QUARANTINE_FAIL_RATE = 0.05, 0.20
HISTORY_DAYS = 28

RECONCILIATION = CheckSpec(
    "reconciliation", "bronze rows = silver rows + quarantined rows + duplicates removed, per run", True
)
QUARANTINE_RATE = CheckSpec(
    "quarantine_rate",
    f"share of bronze rows quarantined: warns above {QUARANTINE_WARN_RATE:.0%}, fails above "
    f"{QUARANTINE_FAIL_RATE:.0%}",
    True,
)
KEYS_NOT_NULL = CheckSpec("keys_not_null", "business and surrogate keys are never null", True)
UNIQUE_KEY = CheckSpec("unique_key", "each of the day's business keys occurs once in the whole table", True)
SCHEMA_CHANGE = CheckSpec(
    "schema_change",
    "the source's columns against its contract: a new column warns, a missing one fails",
    False,
)
ROW_COUNT = CheckSpec(
    "row_count_vs_history",
    f"rows per day within 0.3x..3x the median of the {HISTORY_DAYS} days before",
    False,
)
INSIDE_DAY = CheckSpec("timestamps_inside_partition", "every event time falls on its partition's day", True)


def silver_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["silver", name])


def quarantine_key(source: Source) -> dg.AssetKey:
    return silver_key(f"{source.name}_quarantine")


def bronze_key(source: Source) -> dg.AssetKey:
    return dg.AssetKey(["bronze", source.name])


def previous_day(key: dg.AssetKey) -> dg.AssetDep:
    """A day depends on the day before it (cross-day duplicates, running sequences), so Dagster
    orders days and marks later ones stale when an earlier one changes."""
    return dg.AssetDep(
        key,
        partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True
        ),
    )


def quarantine_spec(source: Source, deps: Sequence[dg.AssetKey]) -> dg.AssetSpec:
    return dg.AssetSpec(
        quarantine_key(source),
        deps=[bronze_key(source), *deps],
        description=f"Rejected {source.name} rows, as received (`record`, `raw_line`), with the rule "
        "that rejected each (`quarantine_rule`) and a readable `quarantine_reason`.",
        group_name="silver",
        kinds={"spark", "delta"},
        tags={"layer": "silver"},
    )


@dataclass(frozen=True)
class Tables:
    """Paths and reads of one run."""

    spark: SparkSession
    lakehouse: LakehouseResource
    days: list[date]

    def path(self, layer: str, name: str) -> str:
        return self.lakehouse.table_path(layer, name)

    def days_of(self, layer: str, name: str) -> DataFrame | None:
        return read_days(self.spark, self.path(layer, name), self.days)

    @property
    def of_days(self) -> str:
        """SQL: the rows of this run's days."""
        return days_predicate(self.days)

    # Counts of what a run read or wrote come from delta-rs: a Spark job for each costs tenths of a
    # second, most of a day's step when there are a dozen of them.
    def rows(self, layer: str, name: str) -> int:
        """Rows of this run's days in a table (0 when there is no table)."""
        return sum(self.per_day(layer, name).values())

    def per_day(self, layer: str, name: str, where: str | None = None) -> dict[str, int]:
        """Rows per day of a table: of this run's days, or of the days `where` selects."""
        return count_by(self.path(layer, name), PARTITION_COLUMN, where or self.of_days)

    def rules_by_day(self, source: Source) -> dict[str, dict[str, int]]:
        """Quarantined rows of each of this run's days by rule ({} for a day with none)."""
        path = self.path("silver", f"{source.name}_quarantine")
        found: dict[str, dict[str, int]] = {str(day): {} for day in self.days}
        for (day, rule), n in count_by_each(
            path, [PARTITION_COLUMN, "quarantine_rule"], self.of_days
        ).items():
            found[day][rule] = n
        return found

    def history_per_day(self, layer: str, name: str, days: int) -> dict[str, int]:
        """Rows per day of the `days` days before this run's first day."""
        first = self.days[0]
        since = first - timedelta(days=days)
        return self.per_day(
            layer, name, f"{PARTITION_COLUMN} >= DATE'{since}' AND {PARTITION_COLUMN} < DATE'{first}'"
        )

    def whole(self, layer: str, name: str, required_by: str) -> DataFrame:
        path = self.path(layer, name)
        if not is_delta_table(self.spark, path):
            raise dg.Failure(
                f"{layer}/{name} does not exist yet at {path}; {required_by} needs it: materialize "
                f"{layer}/{name} for these days first (or select both in one run)."
            )
        return self.spark.read.format("delta").load(path)

    def before(self, layer: str, name: str, columns: Sequence[str]) -> DataFrame:
        """Rows of all the days before this run's first day."""
        path = self.path(layer, name)
        if not is_delta_table(self.spark, path):
            schema = ", ".join(f"{c} string" for c in columns if c != PARTITION_COLUMN)
            return self.spark.createDataFrame([], f"{schema}, {PARTITION_COLUMN} date")
        frame = self.spark.read.format("delta").load(path)
        return frame.where(F.col(PARTITION_COLUMN) < F.lit(self.days[0])).select(*columns)


def summed(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for each in counts:
        for name, n in each.items():
            total[name] = total.get(name, 0) + n
    return total


def rules_table(rules: dict[str, int]) -> dg.MetadataValue:
    rows = [{"rule": k, "rows": v} for k, v in sorted(rules.items(), key=lambda kv: -kv[1])]
    return dg.MetadataValue.md(md.markdown_table(rows, ["rule", "rows"]) if rows else "nothing quarantined")


def no_bronze_rows(
    context: dg.AssetExecutionContext, source: Source, check_list: Sequence[CheckSpec]
) -> Iterator:
    reason = f"bronze/{source.name} has no rows for these days"
    context.log.warning(f"{reason}: silver unchanged.")
    for key in (silver_key(source.name), quarantine_key(source)):
        yield dg.AssetObservation(asset_key=key, metadata={"status": reason})
    yield from checks.evaluate_days(
        context,
        silver_key(source.name),
        checks.not_evaluated(run_days(context), [c.name for c in check_list], reason),
    )


def write_batch(tables: Tables, source: Source, batch: SilverBatch) -> tuple[Commit, Commit]:
    """Replace the run's days in the quarantine, then in the silver table.

    The quarantine first: a write to a table drops the cached frames whose plan reads that table
    (Spark recaches by path), and the batch reads the silver table's earlier days, so once the
    silver table was written the quarantine's write computed the whole batch a second time."""
    path, qpath = tables.path("silver", source.name), tables.path("silver", f"{source.name}_quarantine")
    qcommit = replace_days(batch.quarantined, qpath, tables.days)
    commit = replace_days(batch.accepted, path, tables.days)
    return commit, qcommit


def in_chunks(
    context: dg.AssetExecutionContext, tables: Tables, bronze_per_day: dict[str, int], budget: int
) -> list[Tables]:
    """The run's days as chunks of at most `budget` bronze rows, each read and written on its own:
    a chunk's days see the silver days before them, earlier chunks included, as a run of those days
    alone would."""
    rows = {date.fromisoformat(day): n for day, n in bronze_per_day.items()}
    chunks = chunk_days(tables.days, rows, budget)
    if len(chunks) > 1:
        context.log.info(
            f"{len(tables.days)} days in {len(chunks)} chunks of at most {budget:,} bronze rows."
        )
    return [replace(tables, days=days) for days in chunks]


def batch_results(
    context: dg.AssetExecutionContext,
    tables: Tables,
    source: Source,
    bronze: DataFrame,
    bronze_per_day: dict[str, int],
    written: DataFrame,
    commits: tuple[Commit, Commit],
    table_checks: checks.DayResults,
    chunks: int,
) -> Iterator:
    """Metadata and the shared checks, for each day, of a source written as accepted rows +
    quarantine; `commits` are the last chunk's."""
    rules_by_day = tables.rules_by_day(source)
    day_counts = {str(day): 0 for day in tables.days} | tables.per_day("silver", source.name)
    day_checks: checks.DayResults = {}
    totals = {"bronze": 0, "accepted": 0, "quarantined": 0, "duplicates": 0}
    for day, accepted in day_counts.items():
        day_rules = rules_by_day.get(day, {})
        duplicates = sum(n for rule, n in day_rules.items() if rule.startswith("duplicate_"))
        quarantined = sum(day_rules.values()) - duplicates
        bronze_rows = bronze_per_day.get(day, 0)
        day_checks[day] = [
            checks.reconciliation(
                bronze_rows, {"silver": accepted, "quarantined": quarantined, "duplicates": duplicates}
            ),
            checks.quarantine_rate(
                bronze_rows, quarantined + duplicates, QUARANTINE_WARN_RATE, QUARANTINE_FAIL_RATE
            ),
        ]
        for name, n in zip(totals, (bronze_rows, accepted, quarantined, duplicates), strict=True):
            totals[name] += n
    bronze_rows, accepted, quarantined, duplicates = totals.values()
    rules = summed(rules_by_day.values())
    context.log.info(
        f"silver/{source.name}: bronze {bronze_rows:,} = {accepted:,} accepted + {quarantined:,} quarantined "
        f"+ {duplicates:,} duplicates."
    )
    history = tables.history_per_day("silver", source.name, HISTORY_DAYS)
    results = checks.merge_days(
        day_checks,
        checks.row_count_vs_history(day_counts, list(history.values())),
        checks.each_day(
            tables.days, [checks.schema_change(bronze_source_columns(bronze, source), source.columns)]
        ),
        table_checks,
    )
    commit, qcommit = commits
    yield dg.MaterializeResult(
        asset_key=silver_key(source.name),
        metadata=md.for_each_day(
            context,
            asset_key=silver_key(source.name),
            metadata={
                "dagster/row_count": accepted,
                "dagster/column_schema": md.column_schema(written),
                "bronze_rows": bronze_rows,
                "rows_accepted": accepted,
                "rows_quarantined": quarantined,
                "duplicates_removed": duplicates,
                "reconciliation": f"{bronze_rows:,} = {accepted:,} + {quarantined:,} + {duplicates:,}",
                "days_written": len(tables.days),
                "chunks": chunks,
                **md.commit_metadata(tables.path("silver", source.name), commit),
                # The first day only: Delta reads the one file that holds it, not the whole range.
                "preview": md.table_preview(
                    tables.path("silver", source.name), days_predicate(tables.days[:1])
                ),
            },
        ),
    )
    yield quarantine_result(context, tables, source, rules, qcommit)
    yield from checks.evaluate_days(context, silver_key(source.name), results)


def quarantine_result(
    context: dg.AssetExecutionContext, tables: Tables, source: Source, rules: dict[str, int], commit: Commit
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        asset_key=quarantine_key(source),
        metadata=md.for_each_day(
            context,
            asset_key=quarantine_key(source),
            metadata={
                "dagster/row_count": sum(rules.values()),
                "rows_by_rule": rules_table(rules),
                **md.commit_metadata(tables.path("silver", f"{source.name}_quarantine"), commit),
                "preview": md.table_preview(
                    tables.path("silver", f"{source.name}_quarantine"),
                    tables.of_days,
                    ["record_key", "quarantine_rule", "quarantine_reason"],
                ),
            },
        ),
    )


def bronze_source_columns(bronze: DataFrame, source: Source) -> list[str]:
    return [*source.columns, *columns_beyond_contract(bronze.columns, source)]


def silver_multi_asset(
    source: Source,
    description: str,
    deps: Sequence[dg.AssetKey],
    check_list: Sequence[CheckSpec],
    *,
    reads_earlier_days: bool = False,
):
    """A silver table and its quarantine, written together by one step.

    Both outputs name the same day's inputs: Dagster's UI and GraphQL build a backfill's target of
    a non-subsettable multi-asset per key from the selected parents, and refuse it when the keys'
    targets were built differently. The dependency on the table's own earlier days (cross-day
    deduplication) is the table's alone: on the quarantine it would stretch a backfill one day past
    its range."""
    key = silver_key(source.name)
    earlier = [previous_day(key)] if reads_earlier_days else []
    return dg.multi_asset(
        name=f"silver_{source.name}",
        specs=[
            dg.AssetSpec(
                key,
                deps=[bronze_key(source), *deps, *earlier],
                description=description,
                group_name="silver",
                kinds={"spark", "delta"},
                tags={"layer": "silver"},
                metadata={"business_key": source.key},
            ),
            quarantine_spec(source, deps),
        ],
        check_specs=[c.spec(key) for c in check_list],
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=False,
        pool=SPARK_BATCH_POOL,
    )


BATCH_CHECKS = [
    RECONCILIATION,
    QUARANTINE_RATE,
    ROW_COUNT,
    SCHEMA_CHANGE,
    UNIQUE_KEY,
    KEYS_NOT_NULL,
    INSIDE_DAY,
]
TRANSACTIONS, WEB_EVENTS, CUSTOMERS, PRODUCTS = (
    SOURCES[n] for n in ("transactions", "web_events", "customers", "products")
)


@dataclass(frozen=True)
class BatchTable:
    """A source written as accepted rows + quarantine: what differs between transactions and events."""

    source: Source
    event_time: str
    required: tuple[str, ...]
    build: Callable[[Tables, DataFrame], SilverBatch]
    checks: list[CheckSpec]
    # Columns are built when the asset runs (PySpark needs its SparkContext for them).
    extra_rules: Callable[[], list[RowRule]] = list


def materialize_batch(
    context: dg.AssetExecutionContext, spark: PySparkResource, lakehouse: LakehouseResource, spec: BatchTable
) -> Iterator:
    source = spec.source
    tables = Tables(spark.spark_session, lakehouse, run_days(context))
    bronze = tables.days_of("bronze", source.name)
    # Counted once: whether there is anything to build, the chunks, the reconciliation's left-hand side.
    bronze_per_day = tables.per_day("bronze", source.name)
    bronze_rows = sum(bronze_per_day.values())
    if bronze is None or bronze_rows == 0:
        yield from no_bronze_rows(context, source, spec.checks)
        return
    context.log.info(f"Building silver/{source.name} for {len(tables.days)} days from bronze/{source.name}.")
    chunks = in_chunks(context, tables, bronze_per_day, lakehouse.chunk_rows)
    for number, chunk in enumerate(chunks, 1):
        if len(chunks) > 1:
            context.log.info(
                f"silver/{source.name}: chunk {number}/{len(chunks)}, {chunk.days[0]}..{chunk.days[-1]}"
            )
        rows = sum(bronze_per_day.get(str(day), 0) for day in chunk.days)
        with shuffles_for(tables.spark, rows, lakehouse.rows_per_task):
            batch = spec.build(chunk, chunk.days_of("bronze", source.name))
            commits = write_batch(chunk, source, batch)
        release(batch.persisted)
    written = tables.days_of("silver", source.name)
    path = tables.path("silver", source.name)
    whole = tables.spark.read.format("delta").load(path)
    inside_day = RowRule(
        INSIDE_DAY.name,
        F.to_date(spec.event_time) != F.col(PARTITION_COLUMN),
        [source.key, spec.event_time, PARTITION_COLUMN],
    )
    # The run's keys are looked for across the whole table; a run of part of the table only looks
    # at its own keys (the rest were checked by the runs that wrote them). Sized for all of it.
    table_rows = count_rows(path)
    own_keys = written if tables.rows("silver", source.name) < table_rows else None
    with shuffles_for(tables.spark, table_rows, lakehouse.rows_per_task):
        table_checks = checks.merge_days(
            checks.row_checks_by_day(
                written, PARTITION_COLUMN, tables.days, spec.required, [inside_day, *spec.extra_rules()]
            ),
            checks.each_day(tables.days, [checks.unique_key(whole, source.key, among=own_keys)]),
        )
    yield from batch_results(
        context, tables, source, bronze, bronze_per_day, written, commits, table_checks, len(chunks)
    )


def transaction_rules() -> list[RowRule]:
    amount = F.col("total_amount")
    return [
        RowRule(
            "amount_in_range",
            (amount <= 0) | (amount > MAX_PLAUSIBLE_AMOUNT_MAD),
            ["transaction_id", "total_amount"],
        ),
        RowRule(
            "references_found_as_of",
            F.col("customer_sk").isNull() | F.col("product_sk").isNull(),
            ["transaction_id", "customer_id", "product_id"],
        ),
    ]


SILVER_TRANSACTIONS = BatchTable(
    source=TRANSACTIONS,
    event_time="transaction_ts",
    required=("transaction_id", "customer_id", "product_id", "transaction_ts"),
    build=lambda tables, bronze: build_transactions(
        bronze,
        tables.whole("silver", "customers", "silver/transactions"),
        tables.whole("silver", "products", "silver/transactions"),
        tables.before("silver", TRANSACTIONS.name, ["transaction_id", "customer_id", PARTITION_COLUMN]),
    ),
    checks=[
        *BATCH_CHECKS,
        CheckSpec("amount_in_range", f"0 < total_amount <= {MAX_PLAUSIBLE_AMOUNT_MAD:,} MAD", True),
        CheckSpec(
            "references_found_as_of", "every customer and product has a version at the sale's time", True
        ),
    ],
    extra_rules=transaction_rules,
)

SILVER_WEB_EVENTS = BatchTable(
    source=WEB_EVENTS,
    event_time="event_ts",
    required=("event_id", "session_id", "event_type", "event_ts"),
    build=lambda tables, bronze: build_web_events(
        bronze, tables.before("silver", WEB_EVENTS.name, [WEB_EVENTS.key, PARTITION_COLUMN])
    ),
    checks=BATCH_CHECKS,
)


@silver_multi_asset(
    TRANSACTIONS,
    "Transactions typed (decimal MAD, UTC timestamps), validated, deduplicated across days (first valid "
    "occurrence wins) and enriched with the customer and product versions valid at the transaction "
    "time; plus derived fields (hour, is_foreign, cost, the customer's purchase sequence number).",
    [silver_key("customers"), silver_key("products")],
    SILVER_TRANSACTIONS.checks,
    reads_earlier_days=True,
)
def silver_transactions(
    context: dg.AssetExecutionContext, spark: PySparkResource, lakehouse: LakehouseResource
):
    yield from materialize_batch(context, spark, lakehouse, SILVER_TRANSACTIONS)


@silver_multi_asset(
    WEB_EVENTS,
    "Web events typed and validated, deduplicated by event_id across days, sessionized (a new session "
    "after 30 idle minutes where the source sent none); bot-like sessions quarantined.",
    [],
    SILVER_WEB_EVENTS.checks,
    reads_earlier_days=True,
)
def silver_web_events(
    context: dg.AssetExecutionContext, spark: PySparkResource, lakehouse: LakehouseResource
):
    yield from materialize_batch(context, spark, lakehouse, SILVER_WEB_EVENTS)


DIMENSION_CHECKS = [
    RECONCILIATION,
    QUARANTINE_RATE,
    SCHEMA_CHANGE,
    CheckSpec("unique_current_key", "one current version per business key", True),
    KEYS_NOT_NULL,
    CheckSpec("valid_ranges", "every version is valid from before it is valid to", True),
]


def build_dimension_asset(dimension: Dimension) -> dg.AssetsDefinition:
    source, scd2 = dimension.source, dimension.scd2

    @silver_multi_asset(
        source,
        f"{source.description} Kept as SCD Type 2 (Delta MERGE): `{scd2.surrogate_key}`, "
        f"`{scd2.business_key}`, `valid_from`, `valid_to`, `is_current`, `change_hash`. Order-independent: "
        "a day rebuilds the version chains of the keys it touches from every extract in bronze.",
        [],
        DIMENSION_CHECKS,
    )
    def silver_dimension(
        context: dg.AssetExecutionContext, spark: PySparkResource, lakehouse: LakehouseResource
    ):
        tables = Tables(spark.spark_session, lakehouse, run_days(context))
        bronze_days = tables.days_of("bronze", source.name)
        bronze_per_day = tables.per_day("bronze", source.name)
        bronze_rows = sum(bronze_per_day.values())
        if bronze_days is None or bronze_rows == 0:
            yield from no_bronze_rows(context, source, DIMENSION_CHECKS)
            return
        path = tables.path("silver", source.name)
        context.log.info(f"Applying {len(tables.days)} days of {source.name} changes to the SCD2 table.")
        bronze_whole = tables.whole("bronze", source.name, f"silver/{source.name}")
        # A touched key's chain is rebuilt from every extract in bronze: sized for all of them.
        with shuffles_for(
            tables.spark, count_rows(tables.path("bronze", source.name)), lakehouse.rows_per_task
        ):
            batch = build_dimension(bronze_whole, days_predicate(tables.days), path, dimension)
            statuses_by_day: dict[str, dict[str, int]] = {str(day): {} for day in tables.days}
            for r in batch.classified.groupBy(PARTITION_COLUMN, "scd2_status").count().collect():
                statuses_by_day[str(r[PARTITION_COLUMN])][r.scd2_status] = r["count"]
            commit = last_commit(path)
            qcommit = replace_days(
                batch.quarantined, tables.path("silver", f"{source.name}_quarantine"), tables.days
            )
        release(batch.persisted)
        rules_by_day = tables.rules_by_day(source)
        rules = summed(rules_by_day.values())
        table = tables.spark.read.format("delta").load(path)
        row_results, totals = checks.row_checks(
            table,
            [scd2.business_key, scd2.surrogate_key, "valid_from"],
            [
                RowRule(
                    "valid_ranges",
                    F.col("valid_to") <= F.col("valid_from"),
                    [scd2.business_key, "valid_from", "valid_to"],
                )
            ],
            {"rows": F.count(F.lit(1)), "current": F.count_if("is_current")},
        )
        versions = {
            s: sum(day.get(s, 0) for day in statuses_by_day.values()) for s in (VERSION, UNCHANGED, REPEATED)
        }
        context.log.info(
            f"silver/{source.name}: bronze {bronze_rows:,} = {versions[VERSION]:,} new versions + "
            f"{versions[UNCHANGED]:,} unchanged + {versions[REPEATED]:,} repeated + "
            f"{sum(rules.values()):,} quarantined."
        )
        day_checks: checks.DayResults = {}
        for day, statuses in statuses_by_day.items():
            day_bronze, day_quarantined = bronze_per_day.get(day, 0), sum(rules_by_day[day].values())
            day_versions = {s: statuses.get(s, 0) for s in (VERSION, UNCHANGED, REPEATED)}
            day_checks[day] = [
                checks.reconciliation(day_bronze, {**day_versions, "quarantined": day_quarantined}),
                checks.quarantine_rate(
                    day_bronze, day_quarantined, QUARANTINE_WARN_RATE, QUARANTINE_FAIL_RATE
                ),
            ]
        # The version chains and their keys are the whole table's, whichever days touched them.
        table_checks = [
            checks.schema_change(bronze_source_columns(bronze_days, source), source.columns),
            checks.unique_key(table.where("is_current"), scd2.business_key, "unique_current_key"),
            *row_results,
        ]
        yield dg.MaterializeResult(
            asset_key=silver_key(source.name),
            metadata=md.for_each_day(
                context,
                asset_key=silver_key(source.name),
                metadata={
                    "dagster/row_count": totals["rows"],
                    "dagster/column_schema": md.column_schema(table),
                    "bronze_rows": bronze_rows,
                    "versions_opened": versions[VERSION],
                    "records_unchanged": versions[UNCHANGED],
                    "records_repeated": versions[REPEATED],
                    "rows_quarantined": sum(rules.values()),
                    "current_keys": totals["current"],
                    **md.commit_metadata(path, commit),
                    "preview": md.table_preview(
                        path, days_predicate(tables.days[:1]), order_by=scd2.business_key
                    ),
                },
            ),
        )
        yield quarantine_result(context, tables, source, rules, qcommit)
        yield from checks.evaluate_days(
            context,
            silver_key(source.name),
            checks.merge_days(day_checks, checks.each_day(tables.days, table_checks)),
        )

    return silver_dimension


silver_assets = [
    build_dimension_asset(CUSTOMER_DIMENSION),
    build_dimension_asset(PRODUCT_DIMENSION),
    silver_transactions,
    silver_web_events,
]
