"""The project instance's event log: Dagster's SQLite storage, with connections kept open.

Dagster's `SqliteEventLogStorage` builds a new SQLAlchemy engine, opens the database file and
closes it again for every statement batch. Closing the last connection of a WAL database
checkpoints it, and every commit is synced to disk. A single-run backfill of the history records
a planned and a materialized event per day and asset (13,152 events for bronze and silver alone),
so on this machine's disk about 20 ms per event went to opening, syncing and checkpointing SQLite
files, several minutes of a history build (`python -m bench.event_storage` measures it).

`PooledSqliteEventLogStorage` is that same storage (same files, same tables, same run sharding,
so an existing Dagster home keeps working with either class) with two changes:

- one engine per shard, kept in a small LRU (the index shard and the runs most recently written
  or read), so a connection and its compiled statements are reused;
- `PRAGMA synchronous=NORMAL` on its connections: in WAL mode, SQLite's recommended setting. A
  commit is atomic and survives a crash of the process; only a power loss can roll back the last
  commits, and the database is never corrupted.

It also writes a batch of asset events in one transaction per shard. Dagster hands a storage
batches (a range run's planned events, a range step's materializations) only when
`DAGSTER_EVENT_BATCH_SIZE` is set; building this storage sets it to `EVENT_BATCH_SIZE` unless the
environment already sets it. Otherwise each of those events is its own commit on two shards. And
a check's planned evaluations over a range (a row per day) are serialized once and inserted as one
statement. `python -m bench.event_storage` measures all of it against Dagster's class.

Because writes now stay in a run shard's `-wal` file until SQLite checkpoints it, the run watcher
(the webserver's live event log of a run) listens to that file as well as the database file.

It leans on Dagster internals, so it refuses any Dagster version but the one it was tested with
(`TESTED_DAGSTER_VERSION`, the version `pyproject.toml` pins). It is configured only in the
project's Dagster home (`write_instance_config`, run by `make setup`), never in the root
`dagster.yaml`: `dagster dev` in the project root without `DAGSTER_HOME` makes a temporary
instance from that file, and a storage that must know its home could not start there.
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster
import sqlalchemy as db
import yaml
from dagster import EventLogEntry, Field, StringSource
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SqliteEventLogStorage,
    SqliteEventLogStorageWatchdog,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData, serialize_value
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool
from watchdog.events import FileSystemEvent
from watchdog.observers import Observer

# The index shard, the run being written, and a few runs the webserver shows: more would only hold
# file handles.
OPEN_SHARDS = 8

# The Dagster release this storage was tested with; pyproject.toml pins the same one.
TESTED_DAGSTER_VERSION = "1.13.27"
PROJECT_INSTANCE_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"

# The Dagster pools of the project's steps. Every step that runs Spark over the tables (bronze,
# silver, gold, the report, maintenance) declares "spark_batch"; dagster.yaml counts pools per run
# (`granularity: run`) with one slot each, so the queue starts one such run at a time, whether a
# job, a UI backfill of any assets or a materialization (runs of an asset selection carry no job
# tags for the tag limits to see).
POOLS = ("spark_batch",)

# Events Dagster buffers before it hands them to `store_event_batch` (a batch also ends with the
# step's or run's last event). Dagster reads the variable at each event.
EVENT_BATCH_SIZE = "1000"


def _synchronous_normal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log storage with one open engine per recent shard.

    In `dagster.yaml`::

        event_log_storage:
          module: techmart_assets.instance_storage
          class: PooledSqliteEventLogStorage

    `base_dir` (optional) defaults to Dagster's own location, `$DAGSTER_HOME/history/runs`.
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        if dagster.__version__ != TESTED_DAGSTER_VERSION:
            raise dagster.DagsterInvariantViolationError(
                "techmart_assets.instance_storage.PooledSqliteEventLogStorage was tested with dagster "
                f"{TESTED_DAGSTER_VERSION} and relies on its internals; this is dagster "
                f"{dagster.__version__}. "
                "Remove `event_log_storage` from this Dagster home's dagster.yaml (Dagster's own SQLite "
                "storage reads the same files) or test the storage with this version and update "
                "TESTED_DAGSTER_VERSION."
            )
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._tables: set[str] = set()
        super().__init__(base_dir, inst_data)
        # A forked child must not share the parent's SQLite connections (SQLite forbids it): it
        # opens its own. Dagster's executors spawn, but a user's code may fork.
        forget = weakref.WeakMethod(self._forget_engines_after_fork)
        os.register_at_fork(after_in_child=lambda: (method := forget()) and method())
        # Closing the last connection checkpoints a shard into its database file and removes its
        # write-ahead log; a process that exits without disposing its instance still does it.
        close = weakref.WeakMethod(self._close_engines)
        atexit.register(lambda: (method := close()) and method())
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, str]
    ) -> PooledSqliteEventLogStorage:
        base_dir = config_value.get("base_dir")
        if base_dir is None:
            home = os.environ.get("DAGSTER_HOME")
            if not home:
                raise ValueError(
                    "PooledSqliteEventLogStorage needs `base_dir` in its config or DAGSTER_HOME set"
                )
            base_dir = os.path.join(home, "history", "runs")
        return cls(base_dir, inst_data=inst_data)

    def _forget_engines_after_fork(self) -> None:
        self._engines = OrderedDict()

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = db.create_engine(
            self.conn_string_for_shard(shard),
            # One kept connection; `_db_lock` lets one thread at a time use it, so it may change threads.
            poolclass=QueuePool,
            pool_size=1,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        db.event.listen(engine, "connect", _synchronous_normal)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        while len(self._engines) > OPEN_SHARDS:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    def _close_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # The same lock and transaction as Dagster's storage; only the engine is kept.
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def has_table(self, table_name: str) -> bool:
        """Dagster asks before storing each check evaluation whether the checks table exists, on a new
        engine each time (a range run records an evaluation per check and day). A table that exists
        stays (`wipe` forgets them): asked once. (Dagster asks while it holds the index connection,
        so the question goes through its own engine, not the kept one.)"""
        if table_name not in self._tables and super().has_table(table_name):
            self._tables.add(table_name)
        return table_name in self._tables

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """What `store_event` does for each event, in one transaction per shard.

        Dagster batches the planned events of a run and the asset events of a step (materializations,
        observations, and the planned evaluations of asset checks), all of one run. Anything else is
        stored one event at a time, as before.
        """
        if len({event.run_id for event in events}) != 1 or not all(map(_batchable, events)):
            super().store_event_batch(events)
            return
        rows = [self._event_to_row(event) for event in events]
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        pairs = list(zip(events, rows, strict=True))
        assets = [(event, row) for event, row in pairs if event.dagster_event_type in ASSET_EVENTS]
        if assets:
            asset_events = [event for event, _ in assets]
            with self.index_transaction() as conn:
                ids = _insert_all(conn, [row for _, row in assets])
                self._store_asset_event_tags(conn, asset_events, ids)
                self._store_asset_entries(conn, asset_events, ids)
        for event, row in pairs:
            if event.dagster_event_type in ASSET_CHECK_EVENTS:
                with self.index_connection() as conn:
                    event_id = _insert(conn, row)
                self.store_asset_check_event(event, event_id)

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """Dagster's rows, one per planned partition, serialized once and inserted as one executemany
        (Dagster serializes the event again for each partition and compiles a new multi-row INSERT:
        a range run's check over the history took a quarter of a second)."""
        planned = event.get_dagster_event().event_specific_data
        assert isinstance(planned, AssetCheckEvaluationPlanned)
        partitions = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        row = {
            "asset_key": planned.asset_key.to_string(),
            "check_name": planned.check_name,
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": serialize_value(event),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), [{**row, "partition": p} for p in partitions])

    def _store_asset_entries(self, conn: Connection, events: list[EventLogEntry], ids: list[int]) -> None:
        """The asset key table as Dagster's `_store_asset_event` leaves it after each event in turn.

        Events of one type set the same columns, so only each key's last event of each type needs
        applying, in the events' order (a materialization's values are its whole serialized record).
        Keys are written in the order they first appear, as one event at a time would add them.
        """
        by_key: dict[str, dict[Any, int]] = {}
        for position, event in enumerate(events):
            key = event.get_dagster_event().asset_key.to_string()  # type: ignore[union-attr]
            by_key.setdefault(key, {})[event.dagster_event_type] = position
        for last_of_each_type in by_key.values():
            for position in sorted(last_of_each_type.values()):
                self._store_asset_event(conn, events[position], ids[position])

    def wipe(self) -> None:
        self._tables.clear()
        self._close_engines()  # the run shards' files are deleted
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()

    def watch(self, run_id: str, cursor: str | None, callback: Any) -> None:
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
        watchdog = _RunShardWatchdog(self, run_id, callback, cursor)
        self._watchers[run_id][callback] = (watchdog, self._obs.schedule(watchdog, self._base_dir))


def _insert_all(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert event rows, returning their ids in order: one executemany with RETURNING where SQLite
    has it (3.35 and later), else a statement per row."""
    if not conn.dialect.insert_executemany_returning_sort_by_parameter_order:
        return [_insert(conn, row) for row in rows]
    table = SqlEventLogStorageTable
    statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return list(conn.execute(statement, rows).scalars())


def _insert(conn: Connection, row: dict[str, Any]) -> int:
    return conn.execute(SqlEventLogStorageTable.insert().values(**row)).inserted_primary_key[0]


def _batchable(event: EventLogEntry) -> bool:
    dagster_event = event.dagster_event
    if dagster_event is None:
        return False
    if dagster_event.event_type in ASSET_EVENTS:
        return dagster_event.asset_key is not None
    return dagster_event.event_type in ASSET_CHECK_EVENTS


class _RunShardWatchdog(SqliteEventLogStorageWatchdog):
    """Dagster's run watcher, also woken by the run shard's write-ahead log: with connections kept
    open, a commit writes there, and the database file changes only at a checkpoint."""

    @property
    def patterns(self) -> list[str]:
        return [self._log_path, f"{self._log_path}-wal"]

    def on_modified(self, event: FileSystemEvent) -> None:
        self._process_log()


def instance_config(home: Path) -> dict[str, Any]:
    """The project's Dagster instance for `home`: the root `dagster.yaml` (run queue, concurrency
    limits, no telemetry or pop-ups) plus this event log storage, placed where Dagster's own would
    be (`home/history/runs`), so the home needs no DAGSTER_HOME to be read."""
    config = yaml.safe_load(PROJECT_INSTANCE_YAML.read_text())
    config["event_log_storage"] = {
        "module": "techmart_assets.instance_storage",
        "class": PooledSqliteEventLogStorage.__name__,
        "config": {"base_dir": str(Path(home).resolve() / "history" / "runs")},
    }
    return config


def write_instance_config(home: Path) -> Path:
    """Write `home/dagster.yaml` (`instance_config`), creating the home if needed, and set up the
    instance's pools."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    header = "# Written by `make setup`: the project's dagster.yaml and its event log storage.\n"
    path.write_text(header + yaml.safe_dump(instance_config(home), sort_keys=False))
    with dagster.DagsterInstance.from_config(str(home)) as instance:
        initialize_pools(instance)
    return path


def initialize_pools(instance: dagster.DagsterInstance) -> None:
    """Give the project's pools their limit (dagster.yaml's default) before any run is queued.

    Dagster's run queue creates a pool's limit the first time it sees a queued run of that pool,
    but decides which runs to start in that same pass from the pools it knew before: on a new
    instance, the runs queued at the first pass all start, whatever the limit (two backfills
    launched at once on a fresh instance wrote the same new tables together and failed)."""
    for pool in POOLS:
        instance.event_log_storage.initialize_concurrency_limit_to_default(pool)


if __name__ == "__main__":
    if sys.argv[1:] == ["--pools"]:  # the instance DAGSTER_HOME points at (the compose stack's daemon)
        with dagster.DagsterInstance.get() as instance:
            initialize_pools(instance)
    else:
        print(write_instance_config(Path(sys.argv[1])))
