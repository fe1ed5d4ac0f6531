"""Time travel and upkeep as users run them: `techmart table history/show/restore` and the
`table_maintenance` job, on real Delta tables written by delta-spark."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import deltalake
import pyarrow as pa
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from techmart_assets import cli, tables
from techmart_assets.maintenance import table_maintenance_job
from techmart_assets.settings import Settings
from techmart_assets.streaming.job import table_change
from techmart_assets_tests.support import lakehouse_resources

DAYS = [date(2024, 11, d) for d in range(1, 7)]
TABLE = ["silver/transactions"]


def _sales(spark: SparkSession, day: date, n: int, amount: float):
    return spark.createDataFrame(
        [(f"T{day:%m%d}{i:04d}", f"C{i % 7:03d}", amount + i) for i in range(n)],
        "transaction_id string, customer_id string, total_amount double",
    ).withColumn("partition_date", F.lit(day))


def _write_days(spark: SparkSession, path: str) -> None:
    """One commit per day, as daily runs leave the table: many small files."""
    for day in DAYS:
        _sales(spark, day, 40, 100.0).repartition(3).write.format("delta").mode("overwrite").option(
            "replaceWhere", f"partition_date = DATE'{day}'"
        ).save(path)


def _figures(spark: SparkSession, path: str) -> tuple[int, float, list]:
    frame = spark.read.format("delta").load(path)
    row = frame.agg(F.count("*").alias("n"), F.sum("total_amount").alias("amount")).first()
    keys = sorted(r.transaction_id for r in frame.select("transaction_id").collect())
    return row["n"], row["amount"], keys


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TECHMART_LAKEHOUSE", str(tmp_path))
    return tmp_path


def test_a_bad_day_is_seen_in_history_read_back_as_it_was_and_rolled_back(
    spark: SparkSession, root: Path, capsys: pytest.CaptureFixture
) -> None:
    """The README's runbook: a bad day was written; see it, read the version before, restore it."""
    path = str(root / "silver" / "transactions")
    _write_days(spark, path)
    good = _figures(spark, path)
    bad_day = DAYS[2]
    _sales(spark, bad_day, 5, -1.0).write.format("delta").mode("overwrite").option(
        "replaceWhere", f"partition_date = DATE'{bad_day}'"
    ).save(path)
    assert _figures(spark, path) != good

    assert cli.main(["table", "history", "silver/transactions", "--limit", "3"]) == 0
    listing = capsys.readouterr().out
    assert "| 6 |" in listing and "| 5 |" in listing and "| 3 |" not in listing
    assert f"partition_date = DATE'{bad_day}'" in listing.replace("\\'", "'")

    # The bad day's 40th sale exists only before the bad write.
    assert cli.main(["table", "show", "silver/transactions", "--as-of", "5", "--limit", "1000"]) == 0
    shown = capsys.readouterr().out
    assert "at version 5 (first 240 rows)" in shown and "T11030039" in shown
    assert cli.main(["table", "show", "silver/transactions", "--limit", "1000"]) == 0
    assert "T11030039" not in capsys.readouterr().out

    # Restore as a user does, in its own process (its own Spark), confirmed with --yes.
    env = {**os.environ, "TECHMART_LAKEHOUSE": str(root), "TECHMART_SPARK_DRIVER_MEMORY": "1g"}
    command = [str(Path(sys.executable).parent / "techmart"), "table", "restore", "silver/transactions"]
    refused = subprocess.run([*command, "--to", "5"], env=env, input="n\n", capture_output=True, text=True)
    assert refused.returncode == 1 and "Nothing changed." in refused.stdout
    assert tables.open_table(path).version() == 6
    done = subprocess.run([*command, "--to", "5", "--yes"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "restored to version 5 as version 7" in done.stdout
    assert _figures(spark, path) == good
    assert tables.history(path, 1)[0].operation == "RESTORE"


def test_table_commands_name_what_is_wrong(root: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["table", "history", "transactions"]) == 2
    assert "write LAYER/NAME" in capsys.readouterr().err
    assert cli.main(["table", "show", "gold/nothing_here"]) == 2
    assert "no Delta table at" in capsys.readouterr().err
    assert cli.main(["table", "show", "gold/nothing_here", "--as-of", "yesterday"]) == 2
    assert "ISO-8601" in capsys.readouterr().err


def test_maintenance_compacts_the_files_and_keeps_the_data(
    spark: SparkSession, root: Path, settings: Settings
) -> None:
    path = str(root / "silver" / "transactions")
    _write_days(spark, path)
    before, files_before = _figures(spark, path), tables.active_files(path)
    on_disk_before = len(list(Path(path).glob("*.parquet")))

    result = table_maintenance_job.execute_in_process(
        resources=lakehouse_resources(settings, root),
        run_config={"ops": {"maintain_tables": {"config": {"tables": [*TABLE, "gold/absent"]}}}},
    )
    assert result.success
    assert _figures(spark, path) == before
    after = tables.active_files(path)
    assert files_before.count == len(DAYS) * 3 and after.count < files_before.count
    assert tables.history(path, 2)[0].operation == "VACUUM END"
    observed = [
        e.event_specific_data.asset_observation
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    ]
    assert [o.asset_key.to_user_string() for o in observed] == ["silver/transactions"]
    metadata = {k: v.value for k, v in observed[0].metadata.items()}
    assert metadata["files_before"] == files_before.count and metadata["files_after"] == after.count
    assert metadata["zorder_by"] == "partition_date, customer_id"
    # Seven days' retention: the compacted files stay on disk for readers of the older versions.
    assert len(list(Path(path).glob("*.parquet"))) == on_disk_before + after.count


def test_a_vacuum_shorter_than_seven_days_needs_an_explicit_flag(
    spark: SparkSession, root: Path, settings: Settings
) -> None:
    path = str(root / "silver" / "transactions")
    _write_days(spark, path)
    before = _figures(spark, path)
    config = {"tables": ["silver/transactions"], "retention_hours": 0}
    refused = table_maintenance_job.execute_in_process(
        resources=lakehouse_resources(settings, root),
        run_config={"ops": {"maintain_tables": {"config": config}}},
        raise_on_error=False,
    )
    assert not refused.success
    assert "allow_short_retention" in str(refused.get_step_failure_events()[0].step_failure_data.error)
    forced = table_maintenance_job.execute_in_process(
        resources=lakehouse_resources(settings, root),
        run_config={"ops": {"maintain_tables": {"config": {**config, "allow_short_retention": True}}}},
    )
    assert forced.success
    assert _figures(spark, path) == before
    # Nothing but the compacted files is left on disk.
    assert len(list(Path(path).glob("*.parquet"))) == tables.active_files(path).count


def test_history_counts_the_rows_of_spark_and_delta_rs_commits(spark: SparkSession, tmp_path: Path) -> None:
    """The stream's alerts are appended by delta-rs, the batch tables by Spark: each names its rows
    differently in the commit, and the history (and the sensor's `new_rows`) reads both."""
    path = str(tmp_path / "mixed")
    _sales(spark, DAYS[0], 5, 10.0).write.format("delta").save(path)
    more = pa.Table.from_pandas(_sales(spark, DAYS[1], 3, 10.0).toPandas(), preserve_index=False)
    deltalake.write_deltalake(path, more, mode="append")
    latest, first = tables.history(path)
    assert (latest.operation, latest.rows_written) == ("WRITE", 3)
    assert (first.version, first.rows_written) == (0, 5)
    assert table_change(path, since=None).added_rows == 8
    assert table_change(path, since=0).added_rows == 3
