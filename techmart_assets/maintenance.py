"""Table upkeep: the `table_maintenance` job compacts the big batch tables (OPTIMIZE with Z-order on
the columns reads filter by) and removes the files no recent version reads (VACUUM). A weekly
schedule runs it, off until someone turns it on in the UI.

It changes no data: each table reads the same rows before and after; the observations on each table
say how many files it had and has.
"""

import dagster as dg
from dagster_pyspark import PySparkResource

from techmart_assets import tables as delta_tables
from techmart_assets.delta import count_rows
from techmart_assets.jobs import SCHEDULE_TIMEZONE, WORKLOAD_BATCH, WORKLOAD_TAG
from techmart_assets.resources import SPARK_BATCH_POOL, LakehouseResource

MAINTENANCE_JOB = "table_maintenance"
# Sunday 03:00 in Casablanca: no drop lands and no one reads reports.
MAINTENANCE_CRON = "0 3 * * 0"


class MaintenanceConfig(dg.Config):
    tables: list[str] = list(delta_tables.MAINTAINED)
    retention_hours: float = delta_tables.DEFAULT_RETENTION_HOURS
    # Below 7 days VACUUM can delete files that time travel and running writers still read.
    allow_short_retention: bool = False


@dg.op(
    description="OPTIMIZE (Z-order) and VACUUM the lakehouse's big tables; file counts before and after.",
    tags={WORKLOAD_TAG: WORKLOAD_BATCH},
    pool=SPARK_BATCH_POOL,
)
def maintain_tables(
    context: dg.OpExecutionContext,
    config: MaintenanceConfig,
    spark: PySparkResource,
    lakehouse: LakehouseResource,
) -> None:
    try:  # before any table is touched
        delta_tables.check_retention(config.retention_hours, config.allow_short_retention)
    except delta_tables.TableError as error:
        raise dg.Failure(str(error)) from error
    session = spark.spark_session
    for name in config.tables:
        path = lakehouse.table_path(*delta_tables.split_name(name))
        try:
            before = delta_tables.active_files(path)
        except delta_tables.TableError:
            context.log.warning(f"{name}: no table at {path} yet, nothing to maintain")
            continue
        rows = count_rows(path)
        zorder = delta_tables.ZORDER.get(name, ())
        context.log.info(f"{name}: {before.count} files, {rows:,} rows; OPTIMIZE ZORDER BY {zorder}")
        delta_tables.optimize(session, path, zorder)
        delta_tables.vacuum(session, path, config.retention_hours, config.allow_short_retention)
        after = delta_tables.active_files(path)
        if count_rows(path) != rows:  # OPTIMIZE only rewrites files: anything else is a Delta bug
            raise dg.Failure(f"{name}: {rows:,} rows before maintenance, {count_rows(path):,} after")
        context.log_event(
            dg.AssetObservation(
                asset_key=dg.AssetKey(name.split("/")),
                metadata={
                    "files_before": before.count,
                    "files_after": after.count,
                    "bytes_before": before.bytes,
                    "bytes_after": after.bytes,
                    "zorder_by": ", ".join(zorder) or "(compaction only)",
                    "vacuum_retention_hours": config.retention_hours,
                    "dagster/row_count": rows,
                },
            )
        )


@dg.job(
    name=MAINTENANCE_JOB,
    description="OPTIMIZE with Z-order and VACUUM of the big tables (weekly schedule, off by default).",
    tags={WORKLOAD_TAG: WORKLOAD_BATCH},
)
def table_maintenance_job() -> None:
    maintain_tables()


maintenance_schedule = dg.ScheduleDefinition(
    name="weekly_table_maintenance",
    job=table_maintenance_job,
    cron_schedule=MAINTENANCE_CRON,
    execution_timezone=SCHEDULE_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Sundays at 03:00 (Africa/Casablanca): OPTIMIZE and VACUUM; turn it on in the UI.",
)
