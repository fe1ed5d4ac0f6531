"""Near-real-time sales: completed sales per minute of event time, by category and channel.

A watermarked streaming aggregate on the `transactions` topic: a minute's row is appended to Delta
once the watermark (the latest event time seen minus `WATERMARK`) has passed the minute's end, so
each minute is written exactly once and never revised. Events later than the watermark are not
counted here (batch bronze and silver still hold them); the query's progress reports how many.
The category comes from silver products (current version), read again every micro-batch.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from techmart_assets.delta import append_batches, is_delta_table

LIVE_SALES_QUERY = "live_sales_by_minute"
WATERMARK = "1 minute"
UNKNOWN_CATEGORY = "unknown"


def product_categories(spark: SparkSession, products_path: str) -> DataFrame:
    if is_delta_table(spark, products_path):
        return (
            spark.read.format("delta")
            .load(products_path)
            .where("is_current")
            .select("product_id", "category")
        )
    return spark.createDataFrame([], "product_id string, category string")


def sales_by_minute(parsed: DataFrame, categories: DataFrame) -> DataFrame:
    """Valid, completed transactions -> orders, units and revenue per (minute, category, channel)."""
    sales = (
        parsed.where(F.col("error").isNull() & (F.col("status") == "completed"))
        .join(F.broadcast(categories), "product_id", "left")
        .withColumn("category", F.coalesce("category", F.lit(UNKNOWN_CATEGORY)))
    )
    return (
        sales.withWatermark("event_ts", WATERMARK)
        .groupBy(F.window("event_ts", "1 minute").alias("minute"), "category", "channel")
        .agg(
            F.count("*").alias("orders"),
            F.sum(F.coalesce(F.col("quantity"), F.lit(0))).alias("units"),
            F.round(F.sum("total_amount"), 2).alias("revenue_mad"),
        )
        .select(
            F.col("minute.start").alias("minute_start"),
            "category",
            "channel",
            "orders",
            "units",
            "revenue_mad",
            F.to_date(F.col("minute.start")).alias("partition_date"),
        )
    )


def start_live_sales(
    parsed: DataFrame, categories: DataFrame, path: str, checkpoint: str, trigger_s: float = 10.0
) -> StreamingQuery:
    return (
        sales_by_minute(parsed, categories)
        .writeStream.queryName(LIVE_SALES_QUERY)
        .outputMode("append")  # a minute is written once the watermark has passed it
        .foreachBatch(append_batches(path, partition_by=["partition_date"]))
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime=f"{trigger_s} seconds")
        .start()
    )
