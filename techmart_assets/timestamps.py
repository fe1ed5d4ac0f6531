"""Event times as the sources' contract takes them: ISO-8601 with an explicit UTC offset.

One parser for every path a time arrives by (drop files through bronze to silver, Kafka messages to
the fraud stream and to bronze), so a time the stream accepts is the time silver keeps:

- a date and a time of day to the second, separated by `T` (or a space, as Python's `str()` of a
  datetime writes it): `2026-12-02T10:55:04`;
- optionally a fraction of a second of any precision (`.379622`, Java's nine digits; Spark keeps
  microseconds and drops the rest);
- then the offset: `Z`, or a numeric offset `+01:00`, `-05:30` (or `+0100`). Times are normalized
  to UTC.

So Python's `datetime.now(timezone.utc).isoformat()`, Java's `Instant.toString()` and
`OffsetDateTime.toString()`, and JavaScript's `toISOString()` are all accepted. A time without an
offset is rejected, not guessed: whose local time it is cannot be known.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

ISO_8601_UTC = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})$"
_WITHOUT_OFFSET = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?$"
EXPECTED = "ISO-8601 with Z or an offset, e.g. 2026-12-02T10:55:04.379Z or 2026-12-02T11:55:04+01:00"


def _trimmed(column: str | Column) -> Column:
    return F.trim(F.col(column) if isinstance(column, str) else column)


def iso_timestamp(column: str | Column) -> Column:
    """The text as a UTC timestamp; null when it is not a time the contract takes (or no such time,
    like February 30th)."""
    text = _trimmed(column)
    # Spark's cast reads every accepted form (fractions, offsets) but also others (no offset, a date
    # alone), so the form is checked first; its `Z` must be upper case.
    return F.when(text.rlike(ISO_8601_UTC), F.to_timestamp(F.upper(text)))


def iso_timestamp_problem(column: str | Column) -> Column:
    """Why the text is not a time the contract takes (null when it is)."""
    text = _trimmed(column)
    return (
        F.when(text.isNull() | (text == ""), F.lit("is empty"))
        .when(
            text.rlike(_WITHOUT_OFFSET) & F.to_timestamp(F.concat(F.upper(text), F.lit("Z"))).isNotNull(),
            F.lit("has no UTC offset (add Z or +HH:MM)"),
        )
        .when(text.rlike(_WITHOUT_OFFSET), F.lit("is not a valid date and time"))
        .when(~text.rlike(ISO_8601_UTC), F.lit(f"is not {EXPECTED}"))
        .when(iso_timestamp(text).isNull(), F.lit("is not a valid date and time"))
    )
