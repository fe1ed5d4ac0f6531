"""TechMart lakehouse: a Dagster code location building a Delta Lake medallion (start at definitions.py)."""

import warnings

from dagster import BetaWarning

# Single-run backfill policies are beta in this Dagster release; they are a design requirement here
# (one Spark session per backfill), so the warning would only be noise in every run's log.
warnings.filterwarnings("ignore", category=BetaWarning)
