"""Streaming ingestion: the Kafka `transactions` and `web-events` topics -> bronze, exactly once.

One Structured Streaming query per topic (`bronze_ingestion` for transactions,
`bronze_web_events_ingestion` for web events) appends every message to the same Delta table the
bronze asset writes (`bronze/transactions`, `bronze/web_events`), in bronze's shape, so bronze holds
both the daily drops and the live traffic:
- the contract's columns as strings, as received: the message's values are read as text (a number
  as Spark's JSON reader renders it, the same as for the JSON-lines drops), so a wrong-typed value
  is kept for silver to judge, not lost;
- `_raw_line`: the message itself (for streamed rows always, not only for malformed ones: it is the
  only place that keeps keys the table has no column for);
- `_parse_error`: why the message is not a bronze row (not a complete JSON object, or an object that
  lacks some of the contract's keys), else null. Bad messages are kept, never dropped;
- `_source_file`: `kafka://<topic>/<partition>/<offset>`, which tells streamed rows from file rows
  (the bronze asset replaces and counts only file rows) and makes each record's row traceable;
- `_ingested_at`: the micro-batch's time; `partition_date`: the event's day (of `transaction_ts` or
  `event_ts`, read as silver reads it), or the day of the Kafka record's timestamp when the time does
  not parse.

Exactly once: Kafka offsets live in the query's checkpoint (`checkpoints/ingestion`,
`checkpoints/web_events_ingestion`) and each
micro-batch is committed with the query id and batch id in the same transaction (`BatchLedger`), so a
micro-batch replayed after a crash is skipped, not appended twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery

from techmart_assets.bronze.ingest import METADATA_COLUMNS, STREAMED_PREFIX, columns_beyond_contract
from techmart_assets.delta import PARTITION_COLUMN, append_batches, check_compatible, is_delta_table
from techmart_assets.sources import TRANSACTIONS, WEB_EVENTS, Source
from techmart_assets.streaming.broker import TRANSACTIONS_TOPIC, WEB_EVENTS_TOPIC
from techmart_assets.timestamps import iso_timestamp

INGESTION_QUERY = "bronze_ingestion"
_FIELDS = T.MapType(T.StringType(), T.StringType())


@dataclass(frozen=True)
class Ingestion:
    """A topic and the bronze table its messages land in: the query's name and its checkpoint's."""

    source: Source
    topic: str
    query: str
    checkpoint: str  # the folder's name under the lakehouse's checkpoints


INGESTIONS = {
    i.source.name: i
    for i in (
        Ingestion(TRANSACTIONS, TRANSACTIONS_TOPIC, INGESTION_QUERY, "ingestion"),
        Ingestion(WEB_EVENTS, WEB_EVENTS_TOPIC, "bronze_web_events_ingestion", "web_events_ingestion"),
    )
}


def read_topic(
    spark: SparkSession, bootstrap: str, topic: str, starting: str = "earliest", tasks: int | None = None
) -> DataFrame:
    """A Kafka topic as a stream; `tasks`: read each micro-batch in at least that many tasks."""
    reader = spark.readStream.format("kafka")
    if tasks:
        reader = reader.option("minPartitions", str(tasks))  # offset ranges split into shorter tasks
    return (
        reader.option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", starting)
        # A micro-batch reads up to offsets that exist: without this the broker holds each partition's
        # last fetch for its default 500 ms waiting for more, which is most of a small batch's time.
        .option("kafka.fetch.max.wait.ms", "20")
        .load()
    )


def source_marker(topic: str, partition: int, offset: int) -> str:
    """`kafka://<topic>/<partition>/<offset>`: the `_source_file` of the row of that Kafka record."""
    return f"{STREAMED_PREFIX}{topic}/{partition}/{offset}"


def parse_error(raw: Column, fields: Column, required: Sequence[str]) -> Column:
    """Why a message is not a bronze row, or null: no value, not a JSON object, or missing keys.

    `fields` is the message read as a JSON object of strings (null when it is not one). A key
    present with a null value is received data (silver judges it); a key that is absent is not.
    """
    missing = F.array_except(F.array(*[F.lit(c) for c in required]), F.map_keys(fields))
    return (
        F.when(raw.isNull(), F.lit("empty message (no value)"))
        .when(fields.isNull(), F.lit("message is not a complete JSON object"))
        .when(F.size(missing) > 0, F.concat(F.lit("JSON object lacks keys: "), F.array_join(missing, ", ")))
    )


def to_bronze(
    messages: DataFrame, extra_columns: Sequence[str] = (), source: Source = TRANSACTIONS
) -> DataFrame:
    """Kafka records (`value`, `topic`, `partition`, `offset`, `timestamp`) -> bronze rows of `source`.

    Columns: the contract's, then `extra_columns` (columns the table has beyond the contract, taken
    from the message when it has them), then bronze's metadata columns, in the batch writes' order.
    Works on a stream or on a static frame of Kafka's shape.
    """
    raw = F.col("value").cast("string")
    fields = F.from_json(raw, _FIELDS)
    frame = messages.select(
        raw.alias("_raw_line"),
        fields.alias("_fields"),
        F.format_string(f"{STREAMED_PREFIX}%s/%d/%d", "topic", "partition", "offset").alias("_source_file"),
        F.col("timestamp").alias("_received_at"),
    )
    values = {c: F.col("_fields").getItem(c) for c in (*source.columns, *extra_columns)}
    # As silver reads it (UTC), so silver finds each row on its day.
    event_day = F.to_date(iso_timestamp(values[source.event_time]))
    return frame.select(
        *[value.alias(c) for c, value in values.items()],
        "_raw_line",
        parse_error(F.col("_raw_line"), F.col("_fields"), source.columns).alias("_parse_error"),
        "_source_file",
        F.current_timestamp().alias("_ingested_at"),
        F.coalesce(event_day, F.to_date("_received_at")).alias(PARTITION_COLUMN),
    ).select(*source.columns, *extra_columns, *METADATA_COLUMNS)


def table_extra_columns(spark: SparkSession, path: str, source: Source = TRANSACTIONS) -> list[str]:
    """Columns the bronze table already has beyond the contract (none when it does not exist yet)."""
    if not is_delta_table(spark, path):
        return []
    return columns_beyond_contract(spark.read.format("delta").load(path).columns, source)


def start_ingestion(
    spark: SparkSession,
    bronze_path: str,
    checkpoint: str,
    bootstrap: str,
    trigger_s: float = 5.0,
    tasks: int | None = None,
    source: Source = TRANSACTIONS,
) -> StreamingQuery:
    """Start the ingestion query of `source` (`INGESTIONS`) into the bronze table at `bronze_path`; it
    runs until stopped and resumes from `checkpoint`.

    Columns the table has beyond the contract when the query starts are filled from the messages
    too; a key that is in no column stays in `_raw_line`. A type the table holds differently fails
    here, before anything is written.
    """
    ingestion = INGESTIONS[source.name]
    extra_columns = table_extra_columns(spark, bronze_path, source)
    rows = to_bronze(read_topic(spark, bootstrap, ingestion.topic, tasks=tasks), extra_columns, source)
    check_compatible(rows, bronze_path)
    return (
        # One file per micro-batch, not one per read task: the parsing runs in the read's tasks.
        rows.repartition(1)
        .writeStream.queryName(ingestion.query)
        .foreachBatch(append_batches(bronze_path, options={"mergeSchema": "true"}))
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime=f"{trigger_s} seconds")
        .start()
    )
