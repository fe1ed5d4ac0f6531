"""The sources' time contract: ISO-8601 with Z or an offset, any fraction, normalized to UTC; other
texts rejected with the reason, the same for drop files and Kafka messages."""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from techmart_assets.timestamps import EXPECTED, iso_timestamp, iso_timestamp_problem
from techmart_assets_tests.support import TIME_STYLES

NOT_ISO = f"is not {EXPECTED}"
AT = datetime(2026, 12, 2, 10, 55, 4, 379622, tzinfo=UTC)


def parsed(spark: SparkSession, texts: list[str | None]) -> dict[str | None, tuple[str | None, str | None]]:
    frame = spark.createDataFrame([(t,) for t in texts], "text string")
    rows = frame.select(
        "text",
        F.date_format(iso_timestamp("text"), "yyyy-MM-dd'T'HH:mm:ss.SSSSSS").alias("utc"),
        iso_timestamp_problem("text").alias("problem"),
    ).collect()
    return {r.text: (r.utc, r.problem) for r in rows}


def test_every_producers_style_is_the_same_instant(spark: SparkSession) -> None:
    texts = {style: write(AT) for style, write in TIME_STYLES.items()}
    texts |= {"lower case": "2026-12-02t10:55:04.379622z", "padded": " 2026-12-02T10:55:04.379622Z "}
    result = parsed(spark, list(texts.values()))
    whole = AT.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S.%f")
    for style, text in texts.items():
        expected = whole if style == "whole seconds, Z" else AT.strftime("%Y-%m-%dT%H:%M:%S.%f")
        if style == "javascript toISOString()":
            expected = AT.replace(microsecond=379000).strftime("%Y-%m-%dT%H:%M:%S.%f")
        assert result[text] == (expected, None), style


def test_other_texts_are_rejected_with_the_reason(spark: SparkSession) -> None:
    result = parsed(
        spark,
        [
            "2026-12-02T10:55:04",
            "2026-12-02 10:55:04.5",
            "2026-12-02",
            "2026-12-02T10:55Z",
            "02/12/2026 10:55",
            "2026-02-30T10:55:04Z",
            "2024-13-45 25:61:00",
            "",
            None,
        ],
    )
    assert {text: problem for text, (utc, problem) in result.items() if utc is None} == {
        "2026-12-02T10:55:04": "has no UTC offset (add Z or +HH:MM)",
        "2026-12-02 10:55:04.5": "has no UTC offset (add Z or +HH:MM)",
        "2026-12-02": NOT_ISO,
        "2026-12-02T10:55Z": NOT_ISO,
        "02/12/2026 10:55": NOT_ISO,
        "2026-02-30T10:55:04Z": "is not a valid date and time",
        "2024-13-45 25:61:00": "is not a valid date and time",
        "": "is empty",
        None: "is empty",
    }
