"""Gold: the dbt star schema and metrics (dbt.py) and the daily sales report (assets.py)."""

from techmart_assets.gold.assets import daily_sales_report
from techmart_assets.gold.dbt import gold_dbt_assets

gold_assets = [*gold_dbt_assets, daily_sales_report]

__all__ = ["gold_assets", "gold_dbt_assets"]
