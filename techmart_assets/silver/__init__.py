"""Silver: typed, validated, deduplicated, enriched tables; SCD2 dimensions; quarantines with reasons."""

from techmart_assets.silver.assets import silver_assets

__all__ = ["silver_assets"]
