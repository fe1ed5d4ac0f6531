"""Runtime settings, read once from the environment; every one has an embedded default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _path_or_uri(value: str) -> str:
    """Local folders become absolute (Spark resolves relative paths against its own cwd); URIs stay."""
    return value if "://" in value else str(Path(value).expanduser().resolve())


@dataclass(frozen=True)
class Settings:
    lakehouse_root: str
    spark_master: str
    spark_driver_memory: str
    spark_shuffle_partitions: int
    spark_ui_enabled: bool
    jars_dir: Path
    dagster_home: Path
    kafka_bootstrap: str = "localhost:9092"
    kafka_home: Path = PROJECT_ROOT / ".kafka"
    kafka_heap: str = "512m"
    # A range run's Spark layers work through the range in chunks: bronze of at most this many bytes
    # of drop files, silver of at most this many bronze rows.
    chunk_bytes: int = 512 * 1024**2
    chunk_rows: int = 2_000_000
    # A batch step's shuffles give each task about this many of the rows it reads.
    rows_per_task: int = 250_000

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(
            lakehouse_root=_path_or_uri(env("TECHMART_LAKEHOUSE", "./lakehouse")),
            spark_master=env("TECHMART_SPARK_MASTER", "local[*]"),
            spark_driver_memory=env("TECHMART_SPARK_DRIVER_MEMORY", "2g"),
            spark_shuffle_partitions=int(env("TECHMART_SPARK_SHUFFLE_PARTITIONS", "4")),
            spark_ui_enabled=env("TECHMART_SPARK_UI", "false").lower() in ("1", "true", "yes"),
            jars_dir=Path(env("TECHMART_JARS_DIR", str(PROJECT_ROOT / ".jvm"))),
            dagster_home=Path(env("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home"),
            kafka_bootstrap=env("TECHMART_KAFKA_BOOTSTRAP", "localhost:9092"),
            kafka_home=Path(env("TECHMART_KAFKA_HOME", str(PROJECT_ROOT / ".kafka"))),
            kafka_heap=env("TECHMART_KAFKA_HEAP", "512m"),
            chunk_bytes=int(env("TECHMART_CHUNK_BYTES", str(512 * 1024**2))),
            chunk_rows=int(env("TECHMART_CHUNK_ROWS", "2000000")),
            rows_per_task=int(env("TECHMART_ROWS_PER_TASK", "250000")),
        )
