"""Silver transactions: typed, validated, deduplicated across days, enriched point-in-time.

Plain DataFrame functions; the asset in `silver/assets.py` reads, calls `build_transactions` and
writes. Every bronze row ends up either in silver or in the quarantine with its rule and reason.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from techmart_assets.bronze.ingest import columns_beyond_contract
from techmart_assets.silver.batch import SilverBatch, shared
from techmart_assets.silver.dedup import split_first_occurrences
from techmart_assets.silver.quarantine import to_quarantine, with_record
from techmart_assets.silver.rules import (
    judge,
    still_valid,
    timestamp_of,
    transaction_placement_rules,
    transaction_rules,
)
from techmart_assets.sources import TRANSACTIONS

HOME_COUNTRY = "Morocco"
_CUSTOMER_ATTRIBUTES = {"segment": "customer_segment", "city": "customer_city", "country": "customer_country"}
_PRODUCT_ATTRIBUTES = {
    "category": "product_category",
    "subcategory": "product_subcategory",
    "brand": "product_brand",
    "cost": "unit_cost",
}


def typed(valid: DataFrame) -> DataFrame:
    """Contract columns cast to their business types; columns beyond the contract pass through."""
    casts = {
        "quantity": F.col("quantity").cast("int"),
        "unit_price": F.col("unit_price").cast("decimal(12,2)"),
        "total_amount": F.col("total_amount").cast("decimal(14,2)"),
        "transaction_ts": timestamp_of("transaction_ts"),
    }
    trimmed = {c: F.trim(F.col(c)) for c in ("transaction_id", "customer_id", "product_id")}
    return valid.withColumns({**trimmed, **casts})


def as_of(
    frame: DataFrame, versions: DataFrame, key: str, surrogate: str, attributes: dict[str, str]
) -> DataFrame:
    """Attach the version of `key` valid at `transaction_ts` (its surrogate key and attributes).

    A transaction earlier than the key's first version (the record arrived after the sale), or one
    no version covers, takes the first version. A key with no version at all gets null attributes
    and `_known` false.

    Only the versions that can be picked are joined (the one in force and the first): joining every
    version of the key and ranking them multiplied the rows by the versions a key has (about 16 per
    product over the generated history) before one was kept.
    """
    first_version = F.col("valid_from") == F.min("valid_from").over(Window.partitionBy(key))
    picked = versions.select(
        F.col(key).alias("_v_key"),
        F.col(surrogate),
        "valid_from",
        "valid_to",
        first_version.alias("_first_version"),
        *[F.col(a).alias(alias) for a, alias in attributes.items()],
    )
    ts = F.col("transaction_ts")
    in_force = (F.col("valid_from") <= ts) & (F.col("valid_to").isNull() | (ts < F.col("valid_to")))
    candidate = (F.col(key) == F.col("_v_key")) & (in_force | F.col("_first_version"))
    best = Window.partitionBy("_row_id").orderBy(F.when(in_force, 0).otherwise(1), F.col("valid_from"))
    return (
        frame.join(picked, candidate, "left")
        .withColumn("_pick", F.row_number().over(best))
        .where(F.col("_pick") == 1)
        .withColumn(f"_known_{key}", F.col("_v_key").isNotNull())
        .drop("_v_key", "valid_from", "valid_to", "_first_version", "_pick")
    )


def build_transactions(
    bronze: DataFrame, customers: DataFrame, products: DataFrame, earlier: DataFrame
) -> SilverBatch:
    """Bronze rows of some days → accepted silver rows and quarantined rows (with rule and reason).

    `customers` and `products` are the SCD2 versions; `earlier` the silver transactions of days
    before the batch (`transaction_id`, `customer_id`, `transaction_ts`), for cross-day duplicates
    and each customer's purchase sequence number.
    """
    persisted: list[DataFrame] = []
    judged = shared(judge(with_record(bronze), transaction_rules()), persisted)
    first, duplicates = split_first_occurrences(
        typed(judged.where(still_valid())),
        TRANSACTIONS.key,
        ["transaction_ts", "_source_file", "_record"],
        earlier,
        persisted,
    )
    enriched = as_of(first, customers, "customer_id", "customer_sk", _CUSTOMER_ATTRIBUTES)
    enriched = as_of(enriched, products, "product_id", "product_sk", _PRODUCT_ATTRIBUTES)
    placed = shared(judge(enriched, transaction_placement_rules()), persisted)
    accepted = with_derived_fields(
        placed.where(still_valid()),
        earlier,
        columns_beyond_contract(bronze.columns, TRANSACTIONS),
    )
    rejected = [
        judged.where(~still_valid()),
        duplicates,
        placed.where(~still_valid()),
    ]
    quarantined = [to_quarantine(r, TRANSACTIONS.name, TRANSACTIONS.key) for r in rejected]
    return SilverBatch(accepted, reduce(DataFrame.unionByName, quarantined), persisted)


def with_derived_fields(accepted: DataFrame, earlier: DataFrame, passthrough: list[str]) -> DataFrame:
    """Fields gold and the fraud rules need: time parts, foreign flag, cost, purchase sequence."""
    # Only the batch's customers: the earlier days grow with the history (see dedup.first_days).
    prior_purchases = (
        earlier.join(accepted.select("customer_id"), "customer_id", "left_semi")
        .groupBy("customer_id")
        .agg(F.count(F.lit(1)).alias("_prior_purchases"))
    )
    in_batch = Window.partitionBy("customer_id").orderBy("transaction_ts", "transaction_id")
    derived = (
        accepted.join(prior_purchases, "customer_id", "left")
        .withColumn(
            "customer_purchase_seq",
            F.coalesce(F.col("_prior_purchases"), F.lit(0)) + F.row_number().over(in_batch),
        )
        .withColumn("transaction_date", F.to_date("transaction_ts"))
        .withColumn("hour_of_day", F.hour("transaction_ts"))
        .withColumn("day_of_week", F.date_format("transaction_ts", "EEEE"))
        .withColumn("is_foreign", F.col("country") != F.lit(HOME_COUNTRY))
        .withColumn("cost_amount", (F.col("unit_cost") * F.col("quantity")).cast("decimal(14,2)"))
    )
    business = [
        *TRANSACTIONS.columns,
        "transaction_date",
        "hour_of_day",
        "day_of_week",
        "is_foreign",
        "customer_sk",
        *_CUSTOMER_ATTRIBUTES.values(),
        "customer_purchase_seq",
        "product_sk",
        *_PRODUCT_ATTRIBUTES.values(),
        "cost_amount",
    ]
    return derived.select(*business, *passthrough, "partition_date", "_source_file", "_ingested_at")
