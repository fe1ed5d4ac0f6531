"""The project instance's event log storage keeps SQLite connections open and records what Dagster's
own SQLite storage would: the same files, readable by the stock class, and live run logs still live."""

import os
import queue
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as db
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent, StepMaterializationData
from dagster._core.storage.event_log.schema import AssetKeyTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from techmart_assets.instance_storage import OPEN_SHARDS, PooledSqliteEventLogStorage, write_instance_config

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-11")


def _log(run_id: str, message: str) -> dg.EventLogEntry:
    return dg.EventLogEntry(
        error_info=None,
        level="INFO",
        user_message=message,
        run_id=run_id,
        timestamp=time.time(),
        step_key=None,
        job_name=None,
        dagster_event=None,
    )


@pytest.fixture
def project_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Dagster home as `make setup` makes it: the project's dagster.yaml, DAGSTER_HOME pointing to it."""
    home = tmp_path / "dagster_home"
    write_instance_config(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def test_a_range_run_on_the_project_instance_is_read_back_by_dagster_s_own_storage(
    project_home: Path,
) -> None:
    @dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
    def days(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})

    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        assert Path(storage._base_dir) == project_home / "history" / "runs"  # Dagster's own location
        tags = {
            "dagster/asset_partition_range_start": "2024-01-01",
            "dagster/asset_partition_range_end": "2024-01-10",
        }
        result = dg.materialize([days], instance=instance, tags=tags)
        assert result.success

    # Another process with Dagster's stock class (the webserver of an older dagster.yaml) sees it all.
    stock = SqliteEventLogStorage(str(project_home / "history" / "runs"))
    expected = {f"2024-01-{d:02d}" for d in range(1, 11)}
    assert stock.get_materialized_partitions(dg.AssetKey("days")) == expected
    records = stock.get_records_for_run(result.run_id, limit=1_000).records
    kinds = Counter(
        r.event_log_entry.dagster_event_type for r in records if r.event_log_entry.is_dagster_event
    )
    assert kinds[dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED] == 10
    assert kinds[dg.DagsterEventType.ASSET_MATERIALIZATION] == 10
    assert kinds[dg.DagsterEventType.RUN_SUCCESS] == 1
    latest = stock.get_latest_materialization_events([dg.AssetKey("days")])[dg.AssetKey("days")]
    assert latest is not None and latest.asset_materialization.metadata["days"].value == 10


def _range_run_digest(instance: dg.DagsterInstance) -> dict[str, object]:
    """A range run of two assets and a check on `instance`, and what Dagster's reads then return
    (storage ids and run ids aside, which differ between instances)."""

    @dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
    def days(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(
            metadata={"days": len(context.partition_keys)}, data_version=dg.DataVersion("v1")
        )

    @dg.asset(partitions_def=DAYS, deps=[days], backfill_policy=dg.BackfillPolicy.single_run())
    def later() -> None:
        pass

    @dg.asset_check(asset=days)
    def days_counted() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    tags = {
        "dagster/asset_partition_range_start": "2024-01-01",
        "dagster/asset_partition_range_end": "2024-01-10",
    }
    run_id = dg.materialize([days, later, days_counted], instance=instance, tags=tags).run_id
    storage = instance.event_log_storage
    keys = [dg.AssetKey("days"), dg.AssetKey("later")]
    records = storage.get_records_for_run(run_id, limit=1_000).records
    latest = storage.get_latest_materialization_events(keys)
    check_key = dg.AssetCheckKey(dg.AssetKey("days"), "days_counted")
    return {
        "events": Counter(r.event_log_entry.dagster_event_type for r in records),
        "partitions": {key: storage.get_materialized_partitions(key) for key in keys},
        "planned, not materialized": {
            key: storage.get_latest_asset_partition_materialization_attempts_without_materializations(key)
            for key in keys
        },
        "tags by day": storage.get_latest_tags_by_partition(
            keys[0], dg.DagsterEventType.ASSET_MATERIALIZATION, [DATA_VERSION_TAG]
        ),
        "latest": {
            key: (e.dagster_event.partition, e.asset_materialization.metadata) for key, e in latest.items()
        },
        "asset records": {
            r.asset_entry.asset_key: (
                r.asset_entry.last_run_id == run_id,
                r.asset_entry.last_materialization_record.event_log_entry.dagster_event.partition,
            )
            for r in storage.get_asset_records(keys)
        },
        "planned": {
            key: storage.get_latest_planned_materialization_info(key).run_id == run_id for key in keys
        },
        "tags": sorted(map(sorted, (t.items() for t in storage.get_event_tags_for_asset(keys[0])))),
        "checks": Counter(
            (r.status, r.partition) for r in storage.get_asset_check_execution_history(check_key, limit=100)
        ),
    }


def test_batched_writes_record_what_dagster_s_storage_records_one_event_at_a_time(
    project_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of 6: the 21 planned events (10 days of two assets, the check) arrive as 6, 6, 6 and 3,
    # each step's 10 materializations as 6 and 4.
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "6")
    single: list[dg.DagsterEventType | None] = []
    store_event = PooledSqliteEventLogStorage.store_event
    monkeypatch.setattr(
        PooledSqliteEventLogStorage,
        "store_event",
        lambda self, event: (single.append(event.dagster_event_type), store_event(self, event)),
    )
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        batched = _range_run_digest(instance)
    stock_home = tmp_path / "stock_home"
    stock_home.mkdir()
    (stock_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(stock_home)) as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        one_at_a_time = _range_run_digest(instance)

    assert batched == one_at_a_time
    assert batched["events"][dg.DagsterEventType.ASSET_MATERIALIZATION] == 20
    assert batched["tags by day"] == {f"2024-01-{d:02d}": {DATA_VERSION_TAG: "v1"} for d in range(1, 11)}
    assert batched["partitions"][dg.AssetKey("later")] == {f"2024-01-{d:02d}" for d in range(1, 11)}
    # The asset events and the check's planned evaluation went through the batch path, not one
    # `store_event` each.
    assert not {
        dg.DagsterEventType.ASSET_MATERIALIZATION,
        dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
        dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
    } & set(single), Counter(single)


def _asset_event(kind: str, key: str, day: str, at: float) -> dg.EventLogEntry:
    asset_key = dg.AssetKey(key)
    if kind == "planned":
        event = DagsterEvent.build_asset_materialization_planned_event(
            "job", "step", AssetMaterializationPlannedData(asset_key, partition=day)
        )
    else:
        event = DagsterEvent(
            event_type_value=dg.DagsterEventType.ASSET_MATERIALIZATION.value,
            job_name="job",
            step_key="step",
            event_specific_data=StepMaterializationData(
                dg.AssetMaterialization(asset_key, partition=day, metadata={"at": at})
            ),
        )
    return dg.EventLogEntry(
        error_info=None,
        level="DEBUG",
        user_message="",
        run_id="run-1",
        timestamp=at,
        step_key="step",
        job_name="job",
        dagster_event=event,
    )


def test_a_mixed_batch_leaves_the_asset_tables_as_one_event_at_a_time_does(tmp_path: Path) -> None:
    """Interleaved keys and kinds, a key's planned events on both sides of its materialization:
    every asset record (row id, last run, last materialization and its storage id) as Dagster's
    storage leaves it after the same events one at a time."""
    kinds = [
        ("planned", "c", "2024-01-01"),
        ("planned", "a", "2024-01-01"),
        ("planned", "b", "2024-01-01"),
        ("planned", "a", "2024-01-02"),
        ("materialized", "b", "2024-01-01"),
        ("materialized", "a", "2024-01-01"),
        ("planned", "b", "2024-01-02"),
        ("materialized", "a", "2024-01-02"),
        ("planned", "c", "2024-01-01"),
    ]
    events = [_asset_event(kind, key, day, 1_700_000_000.0 + i) for i, (kind, key, day) in enumerate(kinds)]
    stock = SqliteEventLogStorage(str(tmp_path / "stock"))
    pooled = PooledSqliteEventLogStorage(str(tmp_path / "pooled"))
    try:
        for event in events:
            stock.store_event(event)
        pooled.store_event_batch(events)
        keys = [dg.AssetKey(k) for k in ("a", "b", "c")]
        assert pooled.get_asset_records(keys) == stock.get_asset_records(keys)
        # The table itself, row by row (its ids are the keys' order of first appearance); only the
        # time each row was created differs.
        columns = [c for c in AssetKeyTable.columns if c.name != "create_timestamp"]
        tables = []
        for storage in (stock, pooled):
            with storage.index_connection() as conn:
                tables.append(conn.execute(db.select(*columns).order_by(AssetKeyTable.c.id)).all())
        assert tables[1] == tables[0]
        assert [row.asset_key for row in tables[1]] == ['["c"]', '["a"]', '["b"]']
        records = {r.asset_entry.asset_key: r.asset_entry for r in pooled.get_asset_records(keys)}
        last = records[dg.AssetKey("a")].last_materialization_record
        assert last is not None and last.event_log_entry.dagster_event.partition == "2024-01-02"
        assert records[dg.AssetKey("c")].last_materialization_record is None
        assert records[dg.AssetKey("b")].last_materialization_record is not None
        assert len(pooled.get_records_for_run("run-1").records) == len(events)
    finally:
        pooled.dispose()
        stock.dispose()


def test_a_run_watcher_sees_every_event_as_it_is_written(tmp_path: Path) -> None:
    """The webserver's live log of a run: with the connection kept open, writes land in the run
    shard's write-ahead log, not in its database file, and the watcher must still wake up."""
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    seen: queue.Queue[str] = queue.Queue()
    storage.store_event(_log("run-1", "before the watch"))
    storage.watch("run-1", None, lambda entry, _cursor: seen.put(entry.user_message))
    received: list[str] = []
    try:
        for i in range(5):
            storage.store_event(_log("run-1", f"event {i}"))
            while len(received) < i + 2:  # the first wake-up also reads what came before the watch
                try:
                    received.append(seen.get(timeout=10))
                except queue.Empty:
                    pytest.fail(f"the watcher missed event {i}; it saw {received}")
    finally:
        storage.dispose()
    assert received == ["before the watch", *(f"event {i}" for i in range(5))]


def test_only_the_most_recent_shards_stay_open(tmp_path: Path) -> None:
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    runs = [f"run-{i}" for i in range(OPEN_SHARDS + 4)]
    try:
        for run_id in runs:
            storage.store_event(_log(run_id, f"hello from {run_id}"))
        fds = Path("/proc/self/fd")
        open_files = {os.path.realpath(fd) for fd in fds.iterdir() if os.path.exists(fd)}
        open_shards = {Path(f).name.split(".")[0] for f in open_files if Path(f).parent == tmp_path}
        # The most recent runs (and the index shard, when it was used): no more than the bound.
        assert runs[-1] in open_shards and runs[0] not in open_shards
        assert len(open_shards) <= OPEN_SHARDS
        assert open_shards <= {"index", *runs[-OPEN_SHARDS:]}
        for run_id in runs:  # nothing written to a closed shard is lost
            messages = [r.event_log_entry.user_message for r in storage.get_records_for_run(run_id).records]
            assert messages == [f"hello from {run_id}"]
    finally:
        storage.dispose()


def test_a_process_that_exits_leaves_its_shards_checkpointed(tmp_path: Path) -> None:
    """Without disposing its instance (as scripts do), a process's last connection still closes at
    exit: the events are in the database files and no write-ahead log is left behind."""
    script = (
        "import sys, time\n"
        "from dagster import EventLogEntry\n"
        "from techmart_assets.instance_storage import PooledSqliteEventLogStorage\n"
        "storage = PooledSqliteEventLogStorage(sys.argv[1])\n"
        "storage.store_event(EventLogEntry(error_info=None, level='INFO', user_message='bye', run_id='run-x',"
        " timestamp=time.time(), step_key=None, job_name=None, dagster_event=None))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=120)
    assert (tmp_path / "run-x.db").exists()
    assert not list(tmp_path.glob("*.db-wal")), sorted(p.name for p in tmp_path.iterdir())
    stock = SqliteEventLogStorage(str(tmp_path))
    assert [r.event_log_entry.user_message for r in stock.get_records_for_run("run-x").records] == ["bye"]
