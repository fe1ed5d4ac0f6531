"""The four bronze assets, one factory: a day's raw drop lands in Delta exactly as received.

A day of bronze transactions may also hold rows the streaming ingestion appended from Kafka
(`_source_file` = `kafka://...`). A materialization replaces only the rows that came from drop files
and counts only those; the streamed rows of the day are kept as they are.
"""

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import Observation
from pyspark.sql import functions as F

from techmart_assets import metadata as md
from techmart_assets.bronze.drops import bytes_per_day, data_lines, group_by_header, list_drops
from techmart_assets.bronze.ingest import (
    FROM_DROP_FILES,
    columns_beyond_contract,
    contract_columns,
    read_source_drops,
)
from techmart_assets.delta import PARTITION_COLUMN, count_by, count_rows, days_predicate, replace_days
from techmart_assets.partitions import chunk_days, daily_partitions, run_days
from techmart_assets.quality import checks
from techmart_assets.quality.checks import CheckSpec
from techmart_assets.resources import SPARK_BATCH_POOL, LakehouseResource
from techmart_assets.sources import SOURCES, Source

DROP_FULLY_LANDED = CheckSpec(
    "drop_fully_landed",
    "bronze holds one row per non-empty data line of the drop files it read (nothing skipped)",
    True,
)


def build_bronze_asset(source: Source) -> dg.AssetsDefinition:
    @dg.asset(
        key=["bronze", source.name],
        description=f"{source.description} Every row as received (strings), plus ingestion metadata; "
        "malformed rows kept with `_raw_line` and `_parse_error`.",
        group_name="bronze",
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"spark", "delta"},
        tags={"layer": "bronze"},
        metadata={
            "source_format": source.file_format,
            "business_key": source.key,
            # Each materialization carries its own column schema only when it goes beyond this: the
            # schema serialized into every partition's event of a range run costs a second of its time.
            "dagster/column_schema": md.table_schema(contract_columns(source)),
        },
        output_required=False,
        pool=SPARK_BATCH_POOL,
        check_specs=[DROP_FULLY_LANDED.spec(dg.AssetKey(["bronze", source.name]))],
    )
    def bronze_asset(context: dg.AssetExecutionContext, spark: PySparkResource, lakehouse: LakehouseResource):
        requested = run_days(context)
        first, last = requested[0], requested[-1]
        drops = list_drops(
            lakehouse.raw_source(source.name),
            source.extension,
            first,
            last,
            with_header=source.file_format == "csv",
        )
        days_with_drop = {d.day for d in drops}
        missing = sorted(set(requested) - days_with_drop)
        if not drops:
            context.log.warning(
                f"No {source.name} drop for {first}..{last}: nothing written, bronze unchanged."
            )
            yield dg.AssetObservation(
                asset_key=context.asset_key,
                metadata={"status": "no drop", "days_without_drop": md.days_summary(missing)},
            )
            yield from checks.evaluate_days(
                context,
                context.asset_key,
                checks.not_evaluated(requested, [DROP_FULLY_LANDED.name], "no drop for this day"),
            )
            return

        session = spark.spark_session
        days = sorted(days_with_drop)
        chunks = chunk_days(days, bytes_per_day(drops), lakehouse.chunk_bytes)
        context.log.info(
            f"Reading {len(drops)} {source.name} files for {len(days_with_drop)} days"
            + (f" in {len(chunks)} chunks." if len(chunks) > 1 else ".")
        )
        path = lakehouse.table_path("bronze", source.name)
        written = {"rows": 0, "malformed": 0}
        extra_columns: list[str] = []
        for number, chunk in enumerate(chunks, 1):
            if len(chunks) > 1:
                context.log.info(
                    f"bronze/{source.name}: chunk {number}/{len(chunks)}, {chunk[0]}..{chunk[-1]}"
                )
            chunk_drops = [d for d in drops if chunk[0] <= d.day <= chunk[-1]]
            # The write counts its rows as it goes (no second pass over the table).
            counted = Observation()
            frame = read_source_drops(session, source, group_by_header(chunk_drops)).observe(
                counted, F.count(F.lit(1)).alias("rows"), F.count("_parse_error").alias("malformed")
            )
            commit = replace_days(frame, path, chunk, where=FROM_DROP_FILES)
            written = {name: written[name] + counted.get[name] for name in written}
            extra_columns += [
                c for c in columns_beyond_contract(frame.columns, source) if c not in extra_columns
            ]
        header_lines = 1 if source.file_format == "csv" else 0
        streamed = {}
        if source.streamed:
            kept = count_rows(path, f"({days_predicate(days)}) AND NOT ({FROM_DROP_FILES})")
            streamed = {"streamed_rows_kept": kept}
        yield dg.MaterializeResult(
            metadata=md.for_each_day(
                context,
                {
                    "dagster/row_count": written["rows"],
                    **(
                        {"dagster/column_schema": md.column_schema(session.read.format("delta").load(path))}
                        if extra_columns
                        else {}
                    ),
                    "rows_written": written["rows"],
                    "malformed_rows": written["malformed"],
                    **streamed,
                    "files_read": len(drops),
                    "chunks": len(chunks),
                    "days_written": len(days_with_drop),
                    "days_without_drop": md.days_summary(missing) if missing else "none",
                    "columns_beyond_contract": ", ".join(extra_columns) or "none",
                    **md.commit_metadata(path, commit),
                    # The first day only: Delta reads the one file that holds it, not the whole range.
                    "preview": md.table_preview(
                        path, f"({days_predicate(days[:1])}) AND ({FROM_DROP_FILES})"
                    ),
                },
            ),
        )
        # Each day's rows against its own files' lines: a day that lost rows is the one that fails.
        rows_per_day = count_by(path, PARTITION_COLUMN, f"({days_predicate(days)}) AND ({FROM_DROP_FILES})")
        landed: checks.DayResults = {}
        for day in days:
            day_lines = data_lines([d for d in drops if d.day == day], header_lines)
            day_rows = rows_per_day.get(str(day), 0)
            landed[str(day)] = [
                dg.AssetCheckResult(
                    check_name=DROP_FULLY_LANDED.name,
                    passed=day_lines == day_rows,
                    metadata={"drop_data_lines": day_lines, "bronze_rows": day_rows},
                )
            ]
        without = checks.not_evaluated(missing, [DROP_FULLY_LANDED.name], "no drop for this day")
        yield from checks.evaluate_days(context, context.asset_key, checks.merge_days(landed, without))

    return bronze_asset


bronze_assets = [build_bronze_asset(source) for source in SOURCES.values()]
