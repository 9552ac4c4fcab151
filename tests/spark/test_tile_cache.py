"""The shared tile cache on real Spark and Delta: one Spark job per new version of the data,
however many viewers ask at once, denials shared the same way, cached confidential reads
audited every time.

The cache's clock is a hand-moved one, so "within ``min_refresh_seconds``" and "past it" are
exact; what Spark ran is read from ``cache.runs``, what the data is from Delta's versions.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from tests.fixtures.services import make_settings
from workbench.analytics.computation_runner import Computations
from workbench.analytics.query_service import QueryService
from workbench.analytics.sensitivity import SensitivityDenied
from workbench.analytics.tile_cache import TileCache
from workbench.catalog.records import Computation, Device, Tile
from workbench.catalog.schemas import DatasetObservation
from workbench.catalog.store import Catalog
from workbench.catalog.users import Identity

pytestmark = pytest.mark.spark

ADMIN = Identity("ada", "admin", 1)
AUDITOR = Identity("otto", "admin", 2)
VIEWERS = [Identity(f"viewer-{i:02d}", "viewer", 100 + i) for i in range(20)]
LABELS = {"station-a": "public", "station-b": "confidential"}
REFRESH = 15.0
TABLE = "gold.sensor_averages"


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def lake(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """``gold.sensor_averages`` with a public and a confidential device; the computations of
    a public tile (station-a only) and of a confidential one (every device)."""
    home = tmp_path_factory.mktemp("tile-cache")
    settings = make_settings(home)
    catalog = Catalog(settings.catalog.url)
    now = datetime.now(UTC)
    for iid, label in LABELS.items():
        catalog.save_device(Device(iid, name=iid, sensitivity=label))
    catalog.record_observations(
        [
            DatasetObservation(iid, "mqtt", records=1, first_seen=now, last_seen=now)
            for iid in LABELS
        ]
    )
    spark.sql("CREATE DATABASE IF NOT EXISTS gold")
    spark.sql(f"DROP TABLE IF EXISTS {TABLE}")
    spark.sql(
        f"CREATE TABLE {TABLE} (window_start TIMESTAMP, ingestion_id STRING, sensor_id STRING, "
        f"avg_value DOUBLE) USING DELTA LOCATION '{home / 'gold'}'"
    )
    spark.sql(
        f"INSERT INTO {TABLE} VALUES "
        "(TIMESTAMP '2026-12-01 10:00:00', 'station-a', 's1', 20.0), "
        "(TIMESTAMP '2026-12-01 10:01:00', 'station-a', 's1', 21.0), "
        "(TIMESTAMP '2026-12-01 10:00:00', 'station-b', 's9', 99.0)"
    )
    computations = Computations(QueryService(spark, catalog), catalog)
    computations.save(
        Computation(
            "station_a",
            f"SELECT window_start, sensor_id, avg_value FROM {TABLE} "
            "WHERE ingestion_id = 'station-a' ORDER BY window_start",
            tile_type="timeseries",
            tile_config={"x": "window_start", "y": "avg_value"},
        ),
        ADMIN,
    )
    computations.save(
        Computation(
            "every_station",
            f"SELECT ingestion_id, avg(avg_value) AS mean FROM {TABLE} GROUP BY ingestion_id",
        ),
        ADMIN,
    )
    yield SimpleNamespace(spark=spark, catalog=catalog, computations=computations)
    spark.sql(f"DROP TABLE IF EXISTS {TABLE}")
    catalog.close()


PUBLIC_TILE = Tile("board", "Station A", "station_a", viz="timeseries")
CONFIDENTIAL_TILE = Tile("board", "Every station", "every_station")


def append(lake: SimpleNamespace, minute: int) -> None:
    """One more station-a window: a new Delta version of the table the public tile reads."""
    lake.spark.sql(
        f"INSERT INTO {TABLE} VALUES "
        f"(TIMESTAMP '2026-12-01 10:{minute:02d}:00', 'station-a', 's1', {20.0 + minute})"
    )


def at_once(identities: list[Identity], ask: Callable[[Identity], Any]) -> list[Any]:
    """``ask`` for every identity in its own thread, all released together; each thread's
    answer, or the exception it raised."""
    start = threading.Barrier(len(identities))

    def one(identity: Identity) -> Any:
        start.wait()
        try:
            return ask(identity)
        except Exception as err:  # noqa: BLE001 - handed back for the test to inspect
            return err

    with ThreadPoolExecutor(len(identities)) as pool:
        return list(pool.map(one, identities))


def audited(lake: SimpleNamespace, computation: str) -> list[Any]:
    return [e for e in lake.catalog.audit_entries(limit=10_000) if e.computation == computation]


def test_twenty_viewers_cost_one_run_per_new_version(lake: SimpleNamespace) -> None:
    clock = Clock()
    cache = TileCache(lake.computations, min_refresh_seconds=REFRESH, clock=clock)

    answers = at_once(VIEWERS, lambda who: cache.answer(PUBLIC_TILE, who))
    assert cache.runs == 1
    assert not [a for a in answers if isinstance(a, Exception)], answers
    assert sum(not a["from_cache"] for a in answers) == 1  # the one that ran it
    first = answers[0]
    assert all(a["rows"] == first["rows"] and a["cached_at"] == first["cached_at"] for a in answers)
    assert first["sensitivity"]["label"] == "public" and first["row_count"] == 2
    version = first["versions"][TABLE]

    clock.advance(REFRESH - 1)  # within the window: answered from memory
    assert cache.answer(PUBLIC_TILE, VIEWERS[0])["from_cache"] and cache.runs == 1

    clock.advance(2)  # past it, and the table has no new version: checked, not run
    again = cache.answer(PUBLIC_TILE, VIEWERS[1])
    assert again["from_cache"] and cache.runs == 1 and again["versions"][TABLE] == version

    append(lake, 2)  # a new version lands just after that check...
    clock.advance(REFRESH - 1)
    unseen = cache.answer(PUBLIC_TILE, VIEWERS[2])
    # ...and within the window nothing is checked: the old rows, no run.
    assert unseen["from_cache"] and unseen["row_count"] == 2 and cache.runs == 1

    clock.advance(2)  # past the window: the new version is seen and run once
    fresh = at_once(VIEWERS, lambda who: cache.answer(PUBLIC_TILE, who))
    assert cache.runs == 2
    assert sum(not a["from_cache"] for a in fresh) == 1
    assert {a["row_count"] for a in fresh} == {3}
    assert fresh[0]["versions"][TABLE] > version
    assert [r[2] for r in fresh[0]["rows"]] == [20.0, 21.0, 22.0]  # the new window is visible
    assert audited(lake, "station_a") == []  # public reads are not audited


def test_a_tile_above_clearance_is_derived_once_and_denied_to_every_viewer(
    lake: SimpleNamespace,
) -> None:
    clock = Clock()
    cache = TileCache(lake.computations, min_refresh_seconds=REFRESH, clock=clock)

    denials = at_once(VIEWERS, lambda who: cache.answer(CONFIDENTIAL_TILE, who))
    assert cache.runs == 1
    assert all(isinstance(d, SensitivityDenied) for d in denials), denials
    for denied in denials:
        assert denied.status == 403 and denied.code == "sensitivity_denied"
        assert denied.fields["device"] == "station-b"
        assert denied.fields["label"] == "confidential"
        assert denied.fields["clearance"] == "public" and denied.fields["needs"] == "admin"
        assert "'station-b' is 'confidential'" in denied.message
    # Each viewer gets a denial of their own: one shared exception re-raised would pile every
    # request's frames onto its traceback, and hold them for as long as the cache lives.
    assert len({id(d) for d in denials}) == len(denials)
    depths = []
    for who in VIEWERS[:3]:
        with pytest.raises(SensitivityDenied) as again:
            cache.answer(CONFIDENTIAL_TILE, who)
        depths.append(len(traceback.extract_tb(again.value.__traceback__)))
    assert len(set(depths)) == 1, depths

    clock.advance(REFRESH + 1)  # checked again, nothing changed: still denied, no run
    with pytest.raises(SensitivityDenied):
        cache.answer(CONFIDENTIAL_TILE, VIEWERS[0])
    assert cache.runs == 1

    # An admin's clearance is another key: one run, and the result.
    answer = cache.answer(CONFIDENTIAL_TILE, ADMIN)
    assert cache.runs == 2 and answer["sensitivity"]["label"] == "confidential"
    assert {r[0] for r in answer["rows"]} == set(LABELS)


def test_cached_confidential_reads_are_audited_every_time(lake: SimpleNamespace) -> None:
    clock = Clock()
    cache = TileCache(lake.computations, min_refresh_seconds=REFRESH, clock=clock)
    before = len(audited(lake, "every_station"))

    first = cache.answer(CONFIDENTIAL_TILE, ADMIN)
    assert not first["from_cache"]
    for who in (ADMIN, AUDITOR, ADMIN):
        clock.advance(1)
        assert cache.answer(CONFIDENTIAL_TILE, who)["from_cache"]
    assert cache.runs == 1

    entries = audited(lake, "every_station")[: len(audited(lake, "every_station")) - before]
    assert len(entries) == 4  # the run and each of the three reads from memory
    assert [e.user for e in reversed(entries)] == ["ada", "ada", "otto", "ada"]
    for entry in entries:
        assert entry.sensitivity == "confidential" and entry.role == "admin"
        assert entry.tables == [TABLE] and entry.rows == 2
        assert set(entry.devices) == set(LABELS)
        assert "GROUP BY ingestion_id" in entry.sql


def test_a_relabelled_device_makes_the_tile_run_again(lake: SimpleNamespace) -> None:
    clock = Clock()
    cache = TileCache(lake.computations, min_refresh_seconds=REFRESH, clock=clock)
    assert cache.answer(PUBLIC_TILE, VIEWERS[0])["sensitivity"]["label"] == "public"
    lake.catalog.save_device(Device("station-a", name="station-a", sensitivity="confidential"))
    try:
        clock.advance(REFRESH + 1)  # no new data, but the label changed: derived anew
        with pytest.raises(SensitivityDenied) as denied:
            cache.answer(PUBLIC_TILE, VIEWERS[1])
        assert cache.runs == 2 and denied.value.fields["device"] == "station-a"
    finally:
        lake.catalog.save_device(Device("station-a", name="station-a", sensitivity="public"))
    clock.advance(REFRESH + 1)
    assert not cache.answer(PUBLIC_TILE, VIEWERS[2])["from_cache"] and cache.runs == 3
