"""Streaming ingestion: the Kafka `transactions` topic -> bronze transactions, exactly once.

One Structured Streaming query (`bronze_ingestion`) appends every message to the same Delta table
the bronze asset writes (`bronze/transactions`), in bronze's shape, so bronze holds both the daily
drops and the live traffic:
- the contract's columns as strings, as received: the message's values are read as text (a number
  as Spark's JSON reader renders it, the same as for the JSON-lines drops), so a wrong-typed value
  is kept for silver to judge, not lost;
- `_raw_line`: the message itself (for streamed rows always, not only for malformed ones: it is the
  only place that keeps keys the table has no column for);
- `_parse_error`: why the message is not a bronze row (not a complete JSON object, or an object that
  lacks some of the contract's keys), else null. Bad messages are kept, never dropped;
- `_source_file`: `kafka://<topic>/<partition>/<offset>`, which tells streamed rows from file rows
  (the bronze asset replaces and counts only file rows) and makes each record's row traceable;
- `_ingested_at`: the micro-batch's time; `partition_date`: the event's day (of `transaction_ts`,
  read as silver reads it), or the day of the Kafka record's timestamp when the time does not parse.

Exactly once: Kafka offsets live in the query's checkpoint (`checkpoints/ingestion`) and each
micro-batch is committed with the query id and batch id in the same transaction (`BatchLedger`), so a
micro-batch replayed after a crash is skipped, not appended twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery

from techmart_assets.bronze.ingest import METADATA_COLUMNS, STREAMED_PREFIX, columns_beyond_contract
from techmart_assets.delta import PARTITION_COLUMN, append_batches, check_compatible, is_delta_table
from techmart_assets.sources import TRANSACTIONS
from techmart_assets.streaming.fraud import read_transactions
from techmart_assets.timestamps import iso_timestamp

INGESTION_QUERY = "bronze_ingestion"
_FIELDS = T.MapType(T.StringType(), T.StringType())


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


def to_bronze(messages: DataFrame, extra_columns: Sequence[str] = ()) -> DataFrame:
    """Kafka records (`value`, `topic`, `partition`, `offset`, `timestamp`) -> bronze transaction rows.

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
    values = {c: F.col("_fields").getItem(c) for c in (*TRANSACTIONS.columns, *extra_columns)}
    # As silver reads it (UTC), so silver finds each row on its day.
    event_day = F.to_date(iso_timestamp(values["transaction_ts"]))
    return frame.select(
        *[value.alias(c) for c, value in values.items()],
        "_raw_line",
        parse_error(F.col("_raw_line"), F.col("_fields"), TRANSACTIONS.columns).alias("_parse_error"),
        "_source_file",
        F.current_timestamp().alias("_ingested_at"),
        F.coalesce(event_day, F.to_date("_received_at")).alias(PARTITION_COLUMN),
    ).select(*TRANSACTIONS.columns, *extra_columns, *METADATA_COLUMNS)


def table_extra_columns(spark: SparkSession, path: str) -> list[str]:
    """Columns the bronze table already has beyond the contract (none when it does not exist yet)."""
    if not is_delta_table(spark, path):
        return []
    return columns_beyond_contract(spark.read.format("delta").load(path).columns, TRANSACTIONS)


def start_ingestion(
    spark: SparkSession,
    bronze_transactions_path: str,
    checkpoint: str,
    bootstrap: str,
    trigger_s: float = 5.0,
    tasks: int | None = None,
) -> StreamingQuery:
    """Start the `bronze_ingestion` query; it runs until stopped and resumes from `checkpoint`.

    Columns the table has beyond the contract when the query starts are filled from the messages
    too; a key that is in no column stays in `_raw_line`. A type the table holds differently fails
    here, before anything is written.
    """
    extra_columns = table_extra_columns(spark, bronze_transactions_path)
    rows = to_bronze(read_transactions(spark, bootstrap, tasks=tasks), extra_columns)
    check_compatible(rows, bronze_transactions_path)
    return (
        # One file per micro-batch, not one per read task: the parsing runs in the read's tasks.
        rows.repartition(1)
        .writeStream.queryName(INGESTION_QUERY)
        .foreachBatch(append_batches(bronze_transactions_path, options={"mergeSchema": "true"}))
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime=f"{trigger_s} seconds")
        .start()
    )
