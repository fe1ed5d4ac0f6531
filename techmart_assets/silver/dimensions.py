"""Silver customers and products: typed, validated change records kept as SCD Type 2 versions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from techmart_assets.silver import rules as r
from techmart_assets.silver.batch import shared
from techmart_assets.silver.quarantine import to_quarantine, with_record
from techmart_assets.silver.scd2 import Scd2Table, apply_changes
from techmart_assets.sources import CUSTOMERS, PRODUCTS, Source


@dataclass(frozen=True)
class Dimension:
    source: Source
    scd2: Scd2Table
    # Built per run: a Column needs a live SparkContext.
    rules: Callable[[], tuple[r.Rule, ...]]
    casts: Callable[[], dict[str, Column]]


def _tracked(source: Source) -> tuple[str, ...]:
    """Every attribute but the key and the change time: any change to one opens a version."""
    return tuple(c for c in source.columns if c not in (source.key, "updated_at"))


CUSTOMER_DIMENSION = Dimension(
    source=CUSTOMERS,
    scd2=Scd2Table(business_key="customer_id", surrogate_key="customer_sk", tracked=_tracked(CUSTOMERS)),
    rules=lambda: (
        r.malformed_row(),
        r.missing_keys("customer_id"),
        r.invalid_timestamp("updated_at"),
        r.invalid_date("registration_date"),
    ),
    casts=lambda: {
        "customer_id": F.trim("customer_id"),
        "email": F.lower(F.trim("email")),
        "registration_date": F.to_date("registration_date"),
        "updated_at": r.timestamp_of("updated_at"),
    },
)

PRODUCT_DIMENSION = Dimension(
    source=PRODUCTS,
    scd2=Scd2Table(business_key="product_id", surrogate_key="product_sk", tracked=_tracked(PRODUCTS)),
    rules=lambda: (
        r.malformed_row(),
        r.missing_keys("product_id"),
        r.invalid_timestamp("updated_at"),
        r.not_a_number(["unit_price", "cost"]),
        r.not_a_number(["stock"], r.WHOLE_NUMBER),
        r.not_positive("unit_price", " MAD"),
        r.unexpected_value("is_active", ["true", "false"]),
    ),
    casts=lambda: {
        "product_id": F.trim("product_id"),
        "unit_price": F.col("unit_price").cast("decimal(12,2)"),
        "cost": F.col("cost").cast("decimal(12,2)"),
        "stock": F.col("stock").cast("int"),
        "is_active": F.col("is_active") == F.lit("true"),
        "updated_at": r.timestamp_of("updated_at"),
    },
)


@dataclass(frozen=True)
class DimensionBatch:
    classified: DataFrame  # the selected days' valid records, each with its scd2_status
    quarantined: DataFrame
    persisted: list[DataFrame]  # see batch.shared


def records_needed(bronze: DataFrame, days_predicate: str, key: Column) -> DataFrame:
    """The bronze records a run of the selected days depends on: those days' records, and the other
    days' records of the keys they name (`key`: the business key as silver reads it, its cast),
    whose version chains are rebuilt. A daily run judges and keeps a day's worth of records, not
    the whole history's; a run of every day keeps them all."""
    selected = bronze.where(days_predicate)
    named = selected.select(key.alias("_named_key")).distinct()
    others = bronze.where(f"NOT ({days_predicate})")
    return selected.unionByName(others.join(named, key == F.col("_named_key"), "left_semi"))


def build_dimension(
    bronze: DataFrame, days_predicate: str, path: str, dimension: Dimension
) -> DimensionBatch:
    """Apply the selected days' change records to the SCD2 table at `path` (a MERGE).

    `bronze` holds every day's change records: a touched key's chain is rebuilt from all of them,
    which makes the result independent of the order days are materialized in.
    """
    persisted: list[DataFrame] = []
    casts = dimension.casts()
    records = records_needed(bronze, days_predicate, casts[dimension.scd2.business_key])
    judged = shared(r.judge(with_record(records), dimension.rules()), persisted)
    valid = judged.where(r.still_valid()).withColumns(casts)
    classified = apply_changes(
        valid.drop("_row_id", "_record", "quarantine_rule", "quarantine_reason"),
        days_predicate,
        path,
        dimension.scd2,
        persisted,
    )
    rejected = judged.where(~r.still_valid() & F.expr(days_predicate))
    return DimensionBatch(
        classified=classified,
        quarantined=to_quarantine(rejected, dimension.source.name, dimension.source.key),
        persisted=persisted,
    )
