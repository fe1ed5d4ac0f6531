"""Spark's Python worker daemon (`pyspark.daemon`), with one fix for Python 3.11 and one for the logs.

Before every task a Spark Python worker calls `importlib.invalidate_caches()`. On Python 3.11 that
makes every zip importer on `sys.path` read its archive's whole directory again; Spark puts its own
`spark-core` jar (thousands of entries) on that path, so each task of a pandas UDF or of
`applyInPandasWithState` spent about a second in it: most of a streaming micro-batch. Python 3.12
made this lazy (CPython gh-103200). Here an importer re-reads its archive only when the file
changed (size or modification time), which keeps the cache correct and the task fast.

pyspark's own step that hands `applyInPandasWithState` its groups concatenates empty pandas
frames, which pandas warns about (a `FutureWarning` from `pyspark/sql/pandas/serializers.py`) in
every micro-batch of the fraud detection: the workers, forked from this daemon, do not print it.

Spark ends a Python worker idle for a minute (`PythonWorkerFactory`, not configurable in 3.5) and
forks a new one from this daemon for the next task. The daemon imports up front what the project's
pandas UDFs and the fraud detection import in every new worker (pandas, pyarrow, pyspark's pandas
serializers, the detector, its rules and the city reference, read once): a worker forked after a
quiet period starts with them, so the first micro-batch after idle is not paying for imports.

Spark starts it instead of `pyspark.daemon` through `spark.python.daemon.module` (resources.py).
"""

import os
import warnings
import zipimport

from pyspark import daemon

_reread_directory = zipimport.zipimporter.invalidate_caches


def _invalidate_if_changed(self: zipimport.zipimporter) -> None:
    try:
        stat = os.stat(self.archive)
        signature = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        signature = None
    if signature is not None and getattr(self, "_techmart_signature", None) == signature:
        return
    _reread_directory(self)
    self._techmart_signature = signature


zipimport.zipimporter.invalidate_caches = _invalidate_if_changed
warnings.filterwarnings("ignore", category=FutureWarning, module=r"pyspark\.sql\.pandas\.serializers")


def preload() -> None:
    """Import what the workers' tasks import (fork keeps it), and read the city reference once."""
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401
    import pyspark.sql.pandas.serializers  # noqa: F401

    from techmart_assets.reference.cities import reference
    from techmart_assets.streaming import fraud  # noqa: F401  (the detector and its rules)

    reference()


if __name__ == "__main__":
    preload()
    daemon.manager()
