"""Bronze transformation: a source's drop files in, every row as received plus ingestion metadata out.

Nothing is dropped here. Source columns stay strings exactly as received; a row that does not
parse keeps its raw line in `_raw_line` and the reason in `_parse_error`.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from techmart_assets.sources import Source

CORRUPT = "_corrupt_record"
# The ingestion metadata columns after the source's own (all strings), with their Spark types.
METADATA_TYPES = {
    "_raw_line": "string",
    "_parse_error": "string",
    "_source_file": "string",
    "_ingested_at": "timestamp",
    "partition_date": "date",
}
METADATA_COLUMNS = tuple(METADATA_TYPES)
# Rows the streaming ingestion appends name their Kafka record in `_source_file`
# (`kafka://<topic>/<partition>/<offset>`); rows read from drop files name their file.
STREAMED_PREFIX = "kafka://"
FROM_DROP_FILES = f"_source_file NOT LIKE '{STREAMED_PREFIX}%'"  # SQL: the rows that came from a drop file
_DAY_IN_PATH = r"/(\d{4}-\d{2}-\d{2})/[^/]+$"


def _all_strings(columns: tuple[str, ...]) -> StructType:
    return StructType([StructField(c, StringType()) for c in (*columns, CORRUPT)])


def _field_count(raw: Column) -> Column:
    """Fields in a CSV line, honouring double quotes (a quoted comma is not a separator)."""
    unquoted = F.regexp_replace(raw, r'"([^"]|"")*"', "q")
    return F.size(F.split(unquoted, ","))


def read_csv_drops(spark: SparkSession, files_by_header: dict[tuple[str, ...], list[str]]) -> DataFrame:
    """One read per distinct header, so a column added on some day is kept, not shifted or cut."""
    frames = []
    for header, paths in files_by_header.items():
        frame = (
            spark.read.schema(_all_strings(header))
            .option("header", True)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            .csv(paths)
            .withColumn("_source_file", F.input_file_name())
        )
        parse_error = F.when(
            F.col(CORRUPT).isNotNull(),
            F.format_string(
                "expected %d fields (header of %s), found %d",
                F.lit(len(header)),
                F.element_at(F.split(F.col("_source_file"), "/"), -1),
                _field_count(F.col(CORRUPT)),
            ),
        )
        frames.append(frame.withColumn("_parse_error", parse_error))
    return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)


def read_jsonl_drops(spark: SparkSession, paths: list[str], source: Source) -> DataFrame:
    """JSON lines with every value kept as a string; new keys become new columns by themselves."""
    frame = (
        spark.read.option("primitivesAsString", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .json(paths)
        .withColumn("_source_file", F.input_file_name())
    )
    for column in (*source.columns, CORRUPT):
        if column not in frame.columns:
            frame = frame.withColumn(column, F.lit(None).cast(StringType()))
    return frame.withColumn(
        "_parse_error", F.when(F.col(CORRUPT).isNotNull(), F.lit("line is not a complete JSON object"))
    )


def contract_columns(source: Source) -> list[tuple[str, str]]:
    """A bronze table's columns and Spark types while its source sends what its contract names."""
    return [*((c, "string") for c in source.columns), *METADATA_TYPES.items()]


def columns_beyond_contract(columns: list[str], source: Source) -> list[str]:
    """Columns a source sent that its contract does not name yet (schema evolution)."""
    return [c for c in columns if c not in source.columns and c not in (*METADATA_COLUMNS, CORRUPT)]


def with_ingestion_metadata(frame: DataFrame, source: Source) -> DataFrame:
    """Source columns first (in contract order, then any new ones), then the ingestion metadata.

    `frame` carries `_source_file`, set by the reader next to its scan.
    """
    frame = (
        frame.withColumnRenamed(CORRUPT, "_raw_line")
        .withColumn("_ingested_at", F.current_timestamp())
        .withColumn("partition_date", F.to_date(F.regexp_extract("_source_file", _DAY_IN_PATH, 1)))
    )
    return frame.select(*source.columns, *columns_beyond_contract(frame.columns, source), *METADATA_COLUMNS)


def read_source_drops(
    spark: SparkSession, source: Source, files_by_header: dict[tuple[str, ...], list[str]]
) -> DataFrame:
    if source.file_format == "csv":
        frame = read_csv_drops(spark, files_by_header)
    else:
        frame = read_jsonl_drops(spark, [p for paths in files_by_header.values() for p in paths], source)
    return with_ingestion_metadata(frame, source)
