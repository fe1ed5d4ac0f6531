"""Synthetic raw data for TechMart: daily drops of transactions, web events, customers and products, with
labelled fraud and dirty data. Deterministic for a given seed.
"""

from techmart_assets.generator.config import GeneratorConfig
from techmart_assets.generator.engine import generate
from techmart_assets.generator.summary import GenerationSummary

__all__ = ["GenerationSummary", "GeneratorConfig", "generate"]
