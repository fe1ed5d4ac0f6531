"""Silver validation rules: each has an id, a condition that rejects a row, and a readable reason.

Rules are plain Spark Column expressions over bronze rows (all strings), so they can be tested on a
few hand-made rows; they are built when a run needs them (a Column needs a live SparkContext).
A rejected row goes to its source's quarantine with the first rule it breaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from techmart_assets.timestamps import iso_timestamp, iso_timestamp_problem

# The largest single order line TechMart considers plausible; a spike far above a customer's usual
# basket (a fraud signal, not bad data) stays well below it.
MAX_PLAUSIBLE_AMOUNT_MAD = 5_000_000
DECIMAL_NUMBER = r"^-?[0-9]+(\.[0-9]+)?$"
WHOLE_NUMBER = r"^-?[0-9]+$"


@dataclass(frozen=True)
class Rule:
    rule_id: str
    description: str
    rejects: Column
    reason: Column


def any_of(conditions: Sequence[Column]) -> Column:
    return reduce(lambda a, b: a | b, conditions)


def blank(column: str) -> Column:
    return F.col(column).isNull() | (F.trim(F.col(column)) == "")


def timestamp_of(column: str) -> Column:
    """ISO-8601 text with an offset (`2024-03-05T14:22:31Z`, `...31.379+01:00`) as a UTC timestamp;
    anything else is null (`techmart_assets.timestamps`: the stream parses times the same way)."""
    return iso_timestamp(column)


def malformed_row() -> Rule:
    return Rule(
        "malformed_row",
        "the raw line could not be parsed into the source's columns",
        F.col("_parse_error").isNotNull(),
        F.col("_parse_error"),
    )


def missing_keys(*columns: str) -> Rule:
    missing = [F.when(blank(c), F.lit(c)) for c in columns]
    return Rule(
        "missing_key",
        f"a key is empty: {', '.join(columns)}",
        any_of([blank(c) for c in columns]),
        F.concat(F.lit("missing "), F.concat_ws(", ", *missing)),
    )


def invalid_timestamp(column: str) -> Rule:
    return Rule(
        "invalid_timestamp",
        f"{column} is not an ISO-8601 time with Z or an offset",
        timestamp_of(column).isNull(),
        F.format_string(
            f"{column} '%s' %s", F.coalesce(F.col(column), F.lit("")), iso_timestamp_problem(column)
        ),
    )


def invalid_date(column: str) -> Rule:
    return Rule(
        "invalid_date",
        f"{column} is not an ISO-8601 date",
        F.to_date(F.col(column)).isNull(),
        F.format_string(f"{column} '%s' is not an ISO-8601 date", F.coalesce(F.col(column), F.lit(""))),
    )


def timestamp_outside_partition(column: str) -> Rule:
    """On rows whose `column` is typed already (a UTC timestamp)."""
    return Rule(
        "timestamp_outside_partition",
        f"{column} falls on another day than the drop's partition",
        F.to_date(F.col(column)) != F.col("partition_date"),
        F.format_string(
            f"{column} %s is outside the partition day %s",
            F.col(column),
            F.col("partition_date").cast("string"),
        ),
    )


def not_a_number(columns: Sequence[str], pattern: str = DECIMAL_NUMBER) -> Rule:
    def bad(c: str) -> Column:
        return ~F.coalesce(F.trim(F.col(c)).rlike(pattern), F.lit(False))

    named = [F.when(bad(c), F.format_string(f"{c} '%s'", F.coalesce(F.col(c), F.lit("")))) for c in columns]
    return Rule(
        "invalid_number",
        f"not a number: {', '.join(columns)}",
        any_of([bad(c) for c in columns]),
        F.concat(F.concat_ws(", ", *named), F.lit(" is not a number")),
    )


def not_positive(column: str, unit: str = "") -> Rule:
    value = F.col(column).cast("decimal(18,2)")
    return Rule(
        f"non_positive_{column}",
        f"{column} must be greater than zero",
        value <= 0,
        F.format_string(f"{column} %s{unit} is not positive", F.col(column)),
    )


def above(column: str, limit: int, unit: str) -> Rule:
    return Rule(
        f"implausible_{column}",
        f"{column} above {limit:,}{unit}",
        F.col(column).cast("decimal(18,2)") > limit,
        F.format_string(f"{column} %s{unit} exceeds the plausible maximum of {limit:,}{unit}", F.col(column)),
    )


def amount_mismatch() -> Rule:
    expected = F.col("quantity").cast("decimal(18,2)") * F.col("unit_price").cast("decimal(18,2)")
    return Rule(
        "amount_mismatch",
        "total_amount differs from quantity * unit_price",
        F.abs(expected - F.col("total_amount").cast("decimal(18,2)")) > F.lit(0.01),
        F.format_string(
            "total_amount %s differs from quantity %s * unit_price %s",
            F.col("total_amount"),
            F.col("quantity"),
            F.col("unit_price"),
        ),
    )


def unexpected_value(column: str, allowed: Sequence[str]) -> Rule:
    return Rule(
        f"unexpected_{column}",
        f"{column} must be one of {', '.join(allowed)}",
        ~F.col(column).isin(*allowed),
        F.format_string(f"{column} '%s' is not one of {', '.join(allowed)}", F.col(column)),
    )


def transaction_rules() -> tuple[Rule, ...]:
    """In order: a later rule may rely on an earlier one (a number is parsed before its sign is judged)."""
    return (
        malformed_row(),
        missing_keys("transaction_id", "customer_id", "product_id"),
        invalid_timestamp("transaction_ts"),
        not_a_number(["quantity"], WHOLE_NUMBER),
        not_a_number(["unit_price", "total_amount"]),
        not_positive("quantity"),
        not_positive("total_amount", " MAD"),
        above("total_amount", MAX_PLAUSIBLE_AMOUNT_MAD, " MAD"),
        amount_mismatch(),
        unexpected_value("currency", ["MAD"]),
    )


def unknown_reference(known: str, column: str, name: str) -> Rule:
    """`known` is a boolean column telling whether `column` was found in its reference table."""
    return Rule(
        f"unknown_{name}",
        f"{column} must name a known {name}",
        ~F.col(known),
        F.format_string(f"{column} '%s' is not a known {name}", F.col(column)),
    )


def transaction_placement_rules() -> tuple[Rule, ...]:
    """Judged after deduplication: a re-sent transaction is a duplicate first, whatever its day."""
    return (
        timestamp_outside_partition("transaction_ts"),
        unknown_reference("_known_customer_id", "customer_id", "customer"),
        unknown_reference("_known_product_id", "product_id", "product"),
    )


def first_broken_rule(rules: Sequence[Rule]) -> tuple[Column, Column]:
    """The id and reason of the first rule a row breaks (null, null for a valid row).

    A condition that evaluates to null (a value the rule cannot judge) counts as not broken; rules
    earlier in the list guarantee what later ones need (a number before its sign is judged).
    """
    rule_id = F.coalesce(*[F.when(r.rejects, F.lit(r.rule_id)) for r in rules])
    reason = F.coalesce(*[F.when(r.rejects, r.reason) for r in rules])
    return rule_id, reason


def judge(frame: DataFrame, rules: Sequence[Rule]) -> DataFrame:
    rule_id, reason = first_broken_rule(rules)
    return frame.withColumn("quarantine_rule", rule_id).withColumn("quarantine_reason", reason)


def still_valid() -> Column:
    """A row no rule has rejected yet."""
    return F.col("quarantine_rule").isNull()


def judge_further(frame: DataFrame, rules: Sequence[Rule]) -> DataFrame:
    """`judge` for a frame already judged: rows still valid get the first of `rules` they break;
    rows already rejected keep their rule and reason."""
    rule_id, reason = first_broken_rule(rules)
    valid = still_valid()
    return frame.withColumns(
        {
            "quarantine_rule": F.when(valid, rule_id).otherwise(F.col("quarantine_rule")),
            "quarantine_reason": F.when(valid, reason).otherwise(F.col("quarantine_reason")),
        }
    )
