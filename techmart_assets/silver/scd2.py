"""SCD Type 2 from daily change extracts, order-independent.

A key's versions are a pure function of every change record bronze holds for it: records sorted by
their change time, a record equal to the one before it (same change hash) opens no version, and each
version is valid until the next one. A day's materialization recomputes the chains of the keys its
extract touches and MERGEs them in, so running days in any order, or again, gives the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from techmart_assets.silver.batch import shared

VERSION, UNCHANGED, REPEATED = "new_version", "unchanged", "repeated_record"


@dataclass(frozen=True)
class Scd2Table:
    business_key: str
    surrogate_key: str
    tracked: tuple[str, ...]
    changed_at: str = "updated_at"


def change_hash(tracked: tuple[str, ...]) -> F.Column:
    return F.sha2(
        F.concat_ws("\u001f", *[F.coalesce(F.col(c).cast("string"), F.lit("\u2400")) for c in tracked]), 256
    )


def classify_changes(changes: DataFrame, table: Scd2Table) -> DataFrame:
    """Every change record with its `scd2_status` and, for new versions, the version columns.

    `changes` holds typed, valid records (any number of days, any order) with `partition_date`.
    The same record received twice is `repeated_record`; a record identical to the key's previous
    one is `unchanged`; the rest open a version valid from its change time to the next version's.
    """
    key, at = table.business_key, table.changed_at
    hashed = changes.withColumn("change_hash", change_hash(table.tracked))
    arrival = Window.partitionBy(key, at, "change_hash").orderBy("partition_date", "_source_file")
    in_time = Window.partitionBy(key).orderBy(at, "change_hash")
    marked = (
        hashed.withColumn("_copy", F.row_number().over(arrival))
        .withColumn("_previous_hash", F.lag("change_hash").over(in_time))
        .withColumn(
            "scd2_status",
            F.when(F.col("_copy") > 1, F.lit(REPEATED))
            .when(F.col("_previous_hash") == F.col("change_hash"), F.lit(UNCHANGED))
            .otherwise(F.lit(VERSION)),
        )
    )
    # A repeated copy shares its original's hash and change time, so it never changes whether the
    # next distinct record counts as unchanged.
    versions = Window.partitionBy(key).orderBy(at, "change_hash")
    opened = (
        marked.where(F.col("scd2_status") == VERSION)
        .withColumn("valid_from", F.col(at))
        .withColumn("valid_to", F.lead(at).over(versions))
        .withColumn("version_number", F.row_number().over(versions))
        .withColumn("is_current", F.col("valid_to").isNull())
        .withColumn(table.surrogate_key, F.xxhash64(F.col(key), F.col("valid_from"), F.col("change_hash")))
    )
    not_opened = marked.where(F.col("scd2_status") != VERSION)
    return opened.unionByName(not_opened, allowMissingColumns=True).drop("_copy", "_previous_hash")


def merge_chains(versions: DataFrame, path: str, table: Scd2Table) -> None:
    """Make the table's versions of the keys in `versions` exactly `versions` (insert, update, delete)."""
    spark = versions.sparkSession
    if not DeltaTable.isDeltaTable(spark, path):
        versions.write.format("delta").save(path)
        return
    target = DeltaTable.forPath(spark, path)
    keys = versions.select(table.business_key).distinct()
    sk = table.surrogate_key
    stale = (
        target.toDF()
        .join(keys, on=table.business_key, how="left_semi")
        .join(versions.select(sk), on=sk, how="left_anti")
        .select(sk)
        .withColumn("_delete", F.lit(True))
    )
    source = versions.withColumn("_delete", F.lit(False)).unionByName(stale, allowMissingColumns=True)
    columns = {c: f"s.`{c}`" for c in versions.columns}
    (
        target.alias("t")
        .merge(source.alias("s"), f"t.`{sk}` = s.`{sk}`")
        .whenMatchedDelete(condition="s._delete")
        .whenMatchedUpdate(
            condition="NOT (t.valid_to <=> s.valid_to) OR NOT (t.version_number <=> s.version_number)",
            set=columns,
        )
        .whenNotMatchedInsert(condition="NOT s._delete", values=columns)
        .execute()
    )


def apply_changes(
    changes: DataFrame, days_predicate: str, path: str, table: Scd2Table, persisted: list[DataFrame]
) -> DataFrame:
    """Apply the change records of the selected days to the SCD2 table at `path`.

    `changes` are all typed, valid change records bronze holds (every day); the keys touched on the
    selected days get their whole chain recomputed from them. Returns the selected days' records
    with their `scd2_status`, for reconciliation (the classification is added to `persisted`).
    """
    touched = changes.where(days_predicate).select(table.business_key).distinct()
    classified = shared(
        classify_changes(changes.join(touched, on=table.business_key, how="left_semi"), table), persisted
    )
    versions = classified.where(F.col("scd2_status") == VERSION).drop("scd2_status")
    merge_chains(versions, path, table)
    return classified.where(days_predicate)
