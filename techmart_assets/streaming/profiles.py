"""Customer profiles for the fraud rules and the live behaviour, computed from silver: where each
customer lives and how they usually buy. The same definitions as `rules.build_profile`, in Spark over
the whole history, plus the favourite categories the live suggestions name."""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from techmart_assets.streaming.rules import FraudConfig

PROFILE_COLUMNS = (
    "customer_id",
    "home_country",
    "purchases",
    "mean_amount",
    "std_amount",
    "night_share",
    "max_amount",
    "favourite_categories",
)
FAVOURITES = 3  # categories kept, most bought first


def customer_profiles(
    transactions: DataFrame, customers: DataFrame, as_of: date, config: FraudConfig | None = None
) -> DataFrame:
    """One row per current customer: home country, completed purchases up to `as_of` (inclusive), their
    population mean, standard deviation and maximum, and the share bought in the rules' night hours (UTC).

    `transactions` is silver transactions, `customers` silver customers (SCD2: the current version
    gives the home country). Customers without purchases get a profile with zero purchases, which
    the rules read as "no history". `favourite_categories`: the `FAVOURITES` product categories of
    the most completed purchases, most first (a tie by name).
    """
    config = config or FraudConfig()
    hour = F.hour("transaction_ts")
    night = (hour >= config.night_start_hour) & (hour < config.night_end_hour)
    amount = F.col("total_amount").cast("double")
    completed = transactions.where(
        (F.col("status") == "completed") & (F.to_date("transaction_ts") <= F.lit(as_of))
    )
    history = completed.groupBy("customer_id").agg(
        F.count("*").alias("purchases"),
        F.avg(amount).alias("mean_amount"),
        F.stddev_pop(amount).alias("std_amount"),
        F.avg(night.cast("double")).alias("night_share"),
        F.max(amount).alias("max_amount"),
    )
    ranked = F.sort_array(F.collect_list(F.struct((-F.col("n")).alias("rank"), F.col("category"))))
    favourites = (
        completed.where(F.col("product_category").isNotNull())
        .groupBy("customer_id", F.col("product_category").alias("category"))
        .agg(F.count("*").alias("n"))
        .groupBy("customer_id")
        .agg(
            F.slice(F.transform(ranked, lambda r: r["category"]), 1, FAVOURITES).alias("favourite_categories")
        )
    )
    homes = customers.where("is_current").select("customer_id", F.col("country").alias("home_country"))
    return (
        homes.join(history, "customer_id", "left")
        .join(favourites, "customer_id", "left")
        .withColumn(
            "favourite_categories", F.coalesce("favourite_categories", F.array().cast("array<string>"))
        )
        .fillna(
            {"purchases": 0, "mean_amount": 0.0, "std_amount": 0.0, "night_share": 0.0, "max_amount": 0.0}
        )
        .withColumn("as_of", F.lit(as_of))
        .select(*PROFILE_COLUMNS, "as_of")
    )
