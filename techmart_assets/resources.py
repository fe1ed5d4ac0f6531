"""The resources every asset uses, configured once from the environment: Spark and the lakehouse."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dagster as dg
import pyspark
from dagster_pyspark import PySparkResource

from techmart_assets.instance_storage import POOLS
from techmart_assets.settings import Settings
from techmart_assets.streaming import broker

LAYERS = ("bronze", "silver", "gold")
# Every step that runs Spark over the tables declares this pool (see instance_storage.py).
SPARK_BATCH_POOL = POOLS[0]
SPARK_POOLS = Path(__file__).with_name("spark_pools.xml")


class MissingJarsError(RuntimeError):
    pass


def _artifact_name(jar: Path) -> str:
    """`delta-spark_2.12-3.3.3.jar` -> `delta-spark_2.12`: the name without its version."""
    stem = jar.stem
    parts = stem.split("-")
    while parts and parts[-1][:1].isdigit():
        parts.pop()
    return "-".join(parts)


def spark_jars(jars_dir: Path) -> list[str]:
    """The Maven-fetched jars that the pyspark wheel does not already ship (Delta, the Kafka source).

    Jars pyspark bundles (scala-library, hadoop-client, ...) are left out so the classpath holds
    exactly one copy of each, the one matching the Python side.
    """
    spark_dir = jars_dir / "spark"
    fetched = sorted(spark_dir.glob("*.jar"))
    if not fetched:
        raise MissingJarsError(
            f"No Spark jars in {spark_dir}: run `make setup` (it fetches Delta and spark-sql-kafka with "
            "Maven), or point TECHMART_JARS_DIR at a folder holding spark/*.jar."
        )
    bundled = {_artifact_name(j) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return [str(j) for j in fetched if _artifact_name(j) not in bundled]


def use_project_spark() -> None:
    """Make pyspark start the Spark of the pyspark wheel and this interpreter, whatever the shell has.

    A SPARK_HOME pointing at another Spark starts a JVM of another version than the Python side
    (`py4j ... Method ... does not exist`); the wheel's Spark is the only one this project uses.
    Python workers (pandas UDFs, applyInPandasWithState) start `PYSPARK_PYTHON`, else the first
    `python3` on the PATH, which lacks this environment's pandas and pyarrow; pyspark reads the
    variable (not `spark.pyspark.python`) when the SparkContext starts.
    """
    os.environ["SPARK_HOME"] = str(Path(pyspark.__file__).parent)
    os.environ["PYSPARK_PYTHON"] = sys.executable


def spark_config(settings: Settings) -> dict[str, str]:
    """One SparkSession configuration for the whole project: Delta, local jars, bounded memory."""
    use_project_spark()
    return {
        "spark.master": settings.spark_master,
        "spark.app.name": "techmart-lakehouse",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.jars": ",".join(spark_jars(settings.jars_dir)),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        # The narrowest shuffle: streaming queries' state partitions (kept in their checkpoints), and the
        # least a batch step uses; batch steps widen their shuffles to their data (`sizing`).
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        # Spark 3.5 keeps a cached plan's shuffles at their initial width (Spark 4's default is true):
        # a frame cached between two writes would otherwise be read back at its shuffle's full width.
        "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
        # A cached frame is read back once or twice, then dropped: building its column dictionaries
        # (hashing and copying every string, the whole row's JSON included) cost more than it saved.
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        # Delta rebuilds table state with 50 tasks by default: far too many for tables of this size.
        "spark.databricks.delta.snapshotPartitions": str(settings.spark_shuffle_partitions),
        # A range of daily drops is a read of ~1,000 paths; Spark lists more than 32 paths in a job
        # of one task per path (up to 10,000), which costs more than the read on a small machine.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(settings.spark_shuffle_partitions),
        "spark.sql.warehouse.dir": f"{settings.lakehouse_root}/_spark/warehouse",
        "spark.ui.enabled": str(settings.spark_ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        # A frame the driver collects (`toPandas`: a live features micro-batch) comes as Arrow columns,
        # not rows pickled one by one.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Python workers start from this daemon: pyspark's, without a per-task cost of Python 3.11.
        "spark.python.daemon.module": "techmart_assets.spark_daemon",
        # Pools let the streaming job's fraud detection go first on a small machine (spark_pools.xml).
        "spark.scheduler.mode": "FAIR",
        "spark.scheduler.allocation.file": str(SPARK_POOLS),
    }


def build_spark_resource(settings: Settings) -> PySparkResource:
    return PySparkResource(spark_config=spark_config(settings))


class LakehouseResource(dg.ConfigurableResource):
    """Where everything lives (`root`: a local folder or an object-store URI), and how much of it one
    Spark plan takes: a range run goes through its days in chunks of at most `chunk_bytes` of drop
    files (bronze) or `chunk_rows` bronze rows (silver), so its memory follows the chunk, and a
    step's shuffles give each task about `rows_per_task` of the rows it reads."""

    root: str
    chunk_bytes: int = Settings.chunk_bytes
    chunk_rows: int = Settings.chunk_rows
    rows_per_task: int = Settings.rows_per_task

    def layer_path(self, layer: str) -> str:
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; expected one of {LAYERS}")
        return f"{self.root}/{layer}"

    def table_path(self, layer: str, name: str) -> str:
        return f"{self.layer_path(layer)}/{name}"

    @property
    def raw_data(self) -> str:
        return f"{self.root}/raw_data"

    def raw_source(self, source: str) -> str:
        return f"{self.raw_data}/{source}"

    def checkpoint(self, name: str) -> str:
        return f"{self.root}/checkpoints/{name}"

    @property
    def reports(self) -> str:
        return f"{self.root}/reports"


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster the streaming job reads (`TECHMART_KAFKA_BOOTSTRAP`, default localhost:9092)."""

    bootstrap: str

    def end_offsets(self, topic: str) -> dict[int, int]:
        return broker.end_offsets(self.bootstrap, topic)


def build_lakehouse_resource(settings: Settings, root: str | None = None) -> LakehouseResource:
    """The lakehouse at `root` (default: the settings' root), chunked as the settings say."""
    return LakehouseResource(
        root=root or settings.lakehouse_root,
        chunk_bytes=settings.chunk_bytes,
        chunk_rows=settings.chunk_rows,
        rows_per_task=settings.rows_per_task,
    )


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    settings = settings or Settings.from_env()
    return {
        "spark": build_spark_resource(settings),
        "lakehouse": build_lakehouse_resource(settings),
        "kafka": KafkaResource(bootstrap=settings.kafka_bootstrap),
    }
