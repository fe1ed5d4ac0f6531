"""Bronze: the raw daily drops in Delta, as received, with ingestion metadata."""

from techmart_assets.bronze.assets import bronze_assets

__all__ = ["bronze_assets"]
