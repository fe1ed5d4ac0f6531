"""The streaming side in the asset graph.

- `gold/customer_profiles`: a Spark asset, refreshed with the daily build, that the fraud stream joins
  (it reads the latest version every micro-batch, so a refresh needs no restart). It is current
  state, not a partition: every materialization is as of the latest day silver holds, so a backfill
  of an old day never leaves the stream scoring today's purchases against old profiles.
- `gold/fraud_alerts`, `gold/fraud_dead_letters`, `gold/live_sales_by_minute`,
  `gold/customer_live_features`, `gold/live_funnel_by_minute`: Delta tables written
  continuously by the long-running `fraud_stream` job, not by a materialization. They are external
  assets: the `fraud_stream_sensor` records what the stream committed as their materializations, so
  they show in the UI with counts and can trigger downstream assets. The tables are partitioned by
  the event's day in Delta; the assets are not partitioned, because the stream writes today, a day
  the daily partitions (which end yesterday) do not hold yet.
"""

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import functions as F

from techmart_assets import metadata as md
from techmart_assets.delta import last_commit
from techmart_assets.resources import SPARK_BATCH_POOL, LakehouseResource
from techmart_assets.streaming.profiles import customer_profiles as build_profiles

PROFILES_KEY = dg.AssetKey(["gold", "customer_profiles"])
ALERTS_KEY = dg.AssetKey(["gold", "fraud_alerts"])
DEAD_LETTERS_KEY = dg.AssetKey(["gold", "fraud_dead_letters"])
LIVE_SALES_KEY = dg.AssetKey(["gold", "live_sales_by_minute"])
LIVE_FEATURES_KEY = dg.AssetKey(["gold", "customer_live_features"])
LIVE_FUNNEL_KEY = dg.AssetKey(["gold", "live_funnel_by_minute"])
STREAMING_GROUP = "streaming"


@dg.asset(
    key=PROFILES_KEY,
    deps=[dg.AssetKey(["silver", "transactions"]), dg.AssetKey(["silver", "customers"])],
    pool=SPARK_BATCH_POOL,
    group_name="gold",
    kinds={"spark", "delta"},
    description=(
        "What the fraud rules know of each current customer as of the latest day in silver: home "
        "country, completed purchases, their mean and spread, and the share bought at night. Current "
        "state: replaced whole by each materialization, whichever days its run covers; the fraud "
        "stream picks up the new version without a restart."
    ),
)
def customer_profiles(
    context: dg.AssetExecutionContext, spark: PySparkResource, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    session = spark.spark_session
    read = session.read.format("delta").load
    transactions = read(lakehouse.table_path("silver", "transactions"))
    as_of = transactions.agg(F.max("partition_date")).first()[0]
    if as_of is None:
        raise dg.Failure("silver/transactions holds no day yet: build silver before the profiles.")
    frame = build_profiles(transactions, read(lakehouse.table_path("silver", "customers")), as_of)
    path = lakehouse.table_path("gold", "customer_profiles")
    frame.coalesce(1).write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
    written = session.read.format("delta").load(path)
    with_history = written.where("purchases > 0").count()
    total = written.count()
    context.log.info(f"{total} customer profiles as of {as_of}, {with_history} with purchase history")
    return dg.MaterializeResult(
        metadata={
            "as_of": str(as_of),
            "dagster/row_count": total,
            "customers_with_history": with_history,
            "preview": md.preview(written.orderBy("customer_id")),
            **md.commit_metadata(path, last_commit(path)),
        }
    )


def _stream_table(
    key: dg.AssetKey,
    description: str,
    deps: list[dg.AssetKey],
    partitioned_by: str = "partition_date (the event's day)",
) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=key,
        description=description + " Written continuously by the `fraud_stream` job.",
        deps=deps,
        group_name=STREAMING_GROUP,
        kinds={"kafka", "spark", "delta"},
        metadata={"delta_partitioned_by": partitioned_by},
    )


fraud_alerts = _stream_table(
    ALERTS_KEY,
    "One row per alert: rule, score, explanation, the transaction, event time, when Kafka received it "
    "and when it was detected. Also sent to the `fraud-alerts` topic.",
    [PROFILES_KEY],
)
fraud_dead_letters = _stream_table(
    DEAD_LETTERS_KEY,
    "Messages on `transactions` that could not be used (not JSON, a missing key, a bad value), with the "
    "raw message and the reason.",
    [],
)
live_sales_by_minute = _stream_table(
    LIVE_SALES_KEY,
    "Completed sales per minute of event time by category and channel (orders, units, revenue), a "
    "watermarked streaming aggregate: a minute is written once no event for it can still arrive.",
    [dg.AssetKey(["silver", "products"])],
)

customer_live_features = _stream_table(
    LIVE_FEATURES_KEY,
    "One row per customer seen on the `web-events` topic, upserted (MERGE) as they browse: the current "
    "session (start, events, products and categories viewed, categories bought), the cart and whether "
    "it was abandoned, categories viewed over the last 24 hours, time since the last visit, the usual "
    "basket and favourite categories (from the profiles), and an explained next-best-category "
    "suggestion. Earlier states are the table's Delta versions; each update is also on the compacted "
    "`customer-features` topic. `techmart customer show ID` prints a customer's row.",
    [PROFILES_KEY, dg.AssetKey(["silver", "products"])],
    partitioned_by="not partitioned (one row per customer)",
)
live_funnel_by_minute = _stream_table(
    LIVE_FUNNEL_KEY,
    "The clickstream's funnel per minute of event time: sessions started, page and product views, carts, "
    "checkouts, purchases, and conversion (purchases per session started); a minute's counts grow as "
    "its events arrive (late ones within the two-minute watermark too).",
    [],
)

streaming_assets = [
    customer_profiles,
    fraud_alerts,
    fraud_dead_letters,
    live_sales_by_minute,
    customer_live_features,
    live_funnel_by_minute,
]
