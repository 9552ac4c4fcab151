"""The distinct-count sketch behind "distinct sensors (bounded memory)"."""

import pytest

from workbench.catalog.sketch import EXACT_LIMIT, PRECISION, DistinctSketch, hash_items
from workbench.core.errors import CatalogError


def sketch_of(items: list[str]) -> DistinctSketch:
    sketch = DistinctSketch()
    sketch.update(items)
    return sketch


def test_exact_while_small_whatever_the_repeats() -> None:
    sketch = sketch_of(["s1", "s2", "s3"] * 1000)
    sketch.add("s2")
    assert (sketch.estimate(), sketch.exact) == (3, True)
    limit = sketch_of([f"sensor-{i}" for i in range(EXACT_LIMIT)])
    assert (limit.estimate(), limit.exact) == (EXACT_LIMIT, True)
    assert DistinctSketch().estimate() == 0
    assert sketch_of([""]).estimate() == 1  # an empty id is an id (silver keeps it too)


def test_within_three_percent_for_100k_distinct_ids() -> None:
    ids = [f"sensor-{i:06d}" for i in range(100_000)]
    sketch = DistinctSketch()
    for start in range(0, len(ids), 700):  # in batches, each id seen three times
        sketch.update(ids[start : start + 700] * 3)
    assert not sketch.exact
    assert abs(sketch.estimate() - 100_000) <= 3_000
    for n in (600, 5_000, 30_000):  # the range where plain HyperLogLog is biased
        assert abs(sketch_of(ids[:n]).estimate() - n) <= 0.03 * n


def test_serialized_size_is_constant_after_the_switch() -> None:
    registers = (1 << PRECISION) + 6
    sizes = [len(sketch_of([f"id{i}" for i in range(n)]).to_bytes()) for n in (0, 3, EXACT_LIMIT)]
    assert sizes == [6, 6 + 3 * 8, 6 + EXACT_LIMIT * 8]  # exact: grows, but stays small
    for n in (EXACT_LIMIT + 1, 10_000, 200_000):
        assert len(sketch_of([f"id{i}" for i in range(n)]).to_bytes()) == registers


def test_merge_equals_the_sketch_of_the_union() -> None:
    a_ids = [f"a{i}" for i in range(3_000)] + [f"both{i}" for i in range(2_000)]
    b_ids = [f"b{i}" for i in range(100)] + [f"both{i}" for i in range(2_000)]
    union = sketch_of(a_ids + b_ids)
    for left, right in ((a_ids, b_ids), (b_ids, a_ids), (b_ids[:50], b_ids[50:])):
        merged = sketch_of(left)
        merged.merge(sketch_of(right))
        assert merged.to_bytes() == sketch_of(left + right).to_bytes()
    merged = sketch_of(a_ids)
    merged.merge(sketch_of(b_ids))
    assert merged.to_bytes() == union.to_bytes()
    assert abs(merged.estimate() - 5_100) <= 0.03 * 5_100
    small = sketch_of(["x", "y"])
    small.merge(sketch_of(["y", "z"]))
    assert (small.estimate(), small.exact) == (3, True)


def test_bytes_round_trip_and_damage_is_reported() -> None:
    for items in (["s1", "s2"], [f"id{i}" for i in range(5_000)]):
        sketch = sketch_of(items)
        again = DistinctSketch.from_bytes(sketch.to_bytes())
        assert (again.estimate(), again.exact) == (sketch.estimate(), sketch.exact)
        assert again.to_bytes() == sketch.to_bytes()
    with pytest.raises(CatalogError, match="clear the column"):
        DistinctSketch.from_bytes(b"WD")
    with pytest.raises(CatalogError, match="damaged"):
        DistinctSketch.from_bytes(sketch_of([f"id{i}" for i in range(5_000)]).to_bytes()[:-1])
    with pytest.raises(CatalogError, match="precision"):
        DistinctSketch(PRECISION).merge(DistinctSketch(12))


def test_hashes_are_stable_and_independent_of_the_batch() -> None:
    long_id = "x" * 200
    batch = hash_items(["sensor-1", long_id, "Zähler-7", ""])
    assert batch[0] == hash_items(["sensor-1"])[0]  # the widest item does not matter
    assert batch[1] == hash_items([long_id])[0] and batch[2] == hash_items(["Zähler-7"])[0]
    assert len(set(batch.tolist())) == 4
    # Stored sketches are merged across processes and releases: the hash must never change.
    assert int(hash_items(["sensor-1"])[0]) == 13506129448290891038
    assert int(hash_items([long_id])[0]) == 10205568089174323286
