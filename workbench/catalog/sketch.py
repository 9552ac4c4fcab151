"""Distinct counts in bounded memory ("distinct sensors"): exact while small, then a
HyperLogLog.

A :class:`DistinctSketch` holds the 64-bit hashes of the first :data:`EXACT_LIMIT` distinct
items, so a dataset with a handful of sensors reports exactly that many. Past the limit it
switches to a HyperLogLog of ``2**precision`` one-byte registers (16 KiB at the default
precision 14, standard error ``1.04 / sqrt(2**14)`` ≈ 0.8 %) and stays that size whatever
arrives. Sketches merge (union) without loss: a register-wise maximum, so merging is
commutative and the stored bytes never depend on the order writers came in.

Items are hashed in batches with numpy (the extractor sees batches; one Python call per item
would cost more than the rest of the metadata observation): a multilinear hash of the
item's code points under fixed odd 64-bit keys, finished with MurmurHash3's 64-bit mixer.
The keys are derived with SplitMix64 from a fixed seed, never from numpy's random streams,
because stored sketches must hash the same way in every process and every numpy version.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Collection

import numpy as np
import numpy.typing as npt

from workbench.core.errors import CatalogError

PRECISION = 14
"""Registers are ``2**PRECISION`` bytes; the standard error is ``1.04 / sqrt(2**PRECISION)``."""
EXACT_LIMIT = 512
"""Distinct items kept exactly (as hashes) before switching to the registers."""
FOLD_AT = 1024
"""Items buffered (as text, deduplicated) before they are hashed in one vectorised pass."""
MAX_VECTOR_CHARS = 64
"""Longer items are hashed one by one (BLAKE2b), so one odd item cannot widen the batch."""

_MAGIC = b"WDS"
_FORMAT = 1
_EXACT, _REGISTERS = 0, 1
_HEADER = struct.Struct("<3sBBB")  # magic, format version, precision, mode
_MASK64 = (1 << 64) - 1
_ALPHA_INF = 1 / (2 * math.log(2))


def _splitmix64(seed: int, count: int) -> list[int]:
    out, state = [], seed
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        out.append(z ^ (z >> 31))
    return out


# Odd keys: multiplying a code point by an odd key never loses its low bits.
_KEYS = np.array([k | 1 for k in _splitmix64(0x5EED_F9, MAX_VECTOR_CHARS + 1)], dtype=np.uint64)
_FMIX = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))


def hash_items(items: list[str]) -> npt.NDArray[np.uint64]:
    """Stable 64-bit hashes of ``items`` (the same in every process), vectorised.

    Args:
        items: the texts to hash; a text's hash does not depend on the others in the batch.

    Returns:
        One ``uint64`` per item, in order.
    """
    if not items:
        return np.empty(0, dtype=np.uint64)
    text = np.array(items, dtype=np.str_)
    width = text.dtype.itemsize // 4
    if width > MAX_VECTOR_CHARS:
        long = np.char.str_len(text) > MAX_VECTOR_CHARS
        out = np.empty(len(items), dtype=np.uint64)
        flags = long.tolist()
        short = [s for s, is_long in zip(items, flags, strict=True) if not is_long]
        out[~long] = hash_items(short)
        out[long] = [_hash_long(s) for s, is_long in zip(items, flags, strict=True) if is_long]
        return out
    codes = text.view(np.uint32).reshape(len(items), width)
    # Multilinear: key[0] + Σ code[j]·key[j+1] (mod 2**64). Padding code points are 0 and add
    # nothing, so the hash is independent of the batch's widest item.
    h = codes @ _KEYS[1 : width + 1] + _KEYS[0]
    shift, c1, c2 = _FMIX
    h ^= h >> shift
    h *= c1
    h ^= h >> shift
    h *= c2
    h ^= h >> shift
    return h


def _hash_long(item: str) -> int:
    digest = hashlib.blake2b(item.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class DistinctSketch:
    """Approximate distinct count of text items in bounded memory; exact up to
    :data:`EXACT_LIMIT` items.

    Args:
        precision: HyperLogLog precision (11–18); sketches merge only with equal precision.

    Memory: at most :data:`FOLD_AT` buffered items (:meth:`update` hashes more at once), plus
    either at most :data:`EXACT_LIMIT` hashes or ``2**precision`` bytes of registers.
    :meth:`to_bytes` is at most ``8 * EXACT_LIMIT + 6`` bytes while exact and exactly
    ``2**precision + 6`` after the switch.
    """

    def __init__(self, precision: int = PRECISION) -> None:
        if not 11 <= precision <= 18:
            raise CatalogError(f"sketch precision must be 11 to 18, not {precision}")
        self.precision = precision
        self._buffer: set[str] = set()
        self._exact: set[int] | None = set()
        self._registers: npt.NDArray[np.uint8] | None = None

    @property
    def exact(self) -> bool:
        """Whether :meth:`estimate` is an exact count (still below :data:`EXACT_LIMIT`)."""
        self._fold()
        return self._exact is not None

    def add(self, item: str) -> None:
        """Count one item."""
        self._buffer.add(item)
        if len(self._buffer) >= FOLD_AT:
            self._fold()

    def update(self, items: Collection[str]) -> None:
        """Count several items (cheaper per item than :meth:`add`; pass a set when they
        repeat)."""
        if len(items) >= FOLD_AT:  # hashed at once: buffering them would only copy them
            self._hash_in(list(items))
            return
        self._buffer.update(items)
        if len(self._buffer) >= FOLD_AT:
            self._fold()

    def merge(self, other: DistinctSketch) -> None:
        """Fold ``other`` in: afterwards this sketch counts the union of both.

        Raises:
            CatalogError: if the precisions differ.
        """
        if other.precision != self.precision:
            raise CatalogError(
                f"cannot merge sketches of precision {self.precision} and {other.precision}; "
                "rebuild one at the other's precision"
            )
        self._fold()
        other._fold()
        if other._exact is not None:
            self._add_hashes(np.fromiter(other._exact, dtype=np.uint64, count=len(other._exact)))
            return
        assert other._registers is not None
        if self._registers is None:
            self._registers = other._registers.copy()
            self._add_hashes(self._pop_exact())
        else:
            np.maximum(self._registers, other._registers, out=self._registers)

    def estimate(self) -> int:
        """The number of distinct items: exact while :attr:`exact`, else the HyperLogLog
        estimate (Ertl's improved estimator, unbiased over the whole range)."""
        self._fold()
        if self._exact is not None:
            return len(self._exact)
        assert self._registers is not None
        return round(_ertl_estimate(self._registers, 64 - self.precision))

    def to_bytes(self) -> bytes:
        """The sketch as bytes (for the catalog): a 6-byte header, then the sorted hashes
        (8 bytes each) while exact, else the registers."""
        self._fold()
        if self._exact is not None:
            hashes = np.sort(np.fromiter(self._exact, dtype=np.uint64, count=len(self._exact)))
            body = hashes.astype("<u8").tobytes()
            mode = _EXACT
        else:
            assert self._registers is not None
            body, mode = self._registers.tobytes(), _REGISTERS
        return _HEADER.pack(_MAGIC, _FORMAT, self.precision, mode) + body

    @classmethod
    def from_bytes(cls, data: bytes) -> DistinctSketch:
        """The sketch :meth:`to_bytes` wrote.

        Raises:
            CatalogError: if ``data`` is not a sketch of a format this version reads.
        """
        try:
            magic, version, precision, mode = _HEADER.unpack_from(data)
        except struct.error as err:
            raise CatalogError("stored sketch is truncated; clear the column to recount") from err
        if magic != _MAGIC or version != _FORMAT:
            raise CatalogError(
                f"stored sketch has format {magic!r}/{version}, this version reads "
                f"{_MAGIC!r}/{_FORMAT}; upgrade the workbench or clear the column to recount"
            )
        sketch = cls(precision)
        body = memoryview(data)[_HEADER.size :]
        if mode == _EXACT and len(body) % 8 == 0:
            sketch._exact = set(np.frombuffer(body, dtype="<u8").tolist())
        elif mode == _REGISTERS and len(body) == 1 << precision:
            sketch._exact = None
            sketch._registers = np.frombuffer(body, dtype=np.uint8).copy()
        else:
            raise CatalogError(
                f"stored sketch is damaged (mode {mode}, {len(body)} bytes); "
                "clear the column to recount"
            )
        return sketch

    def _fold(self) -> None:
        """Hash the buffered items into the exact set or the registers."""
        if not self._buffer:
            return
        items, self._buffer = list(self._buffer), set()
        self._hash_in(items)

    def _hash_in(self, items: list[str]) -> None:
        # In slices: hashing about a thousand items at once is fastest (they stay in cache).
        for start in range(0, len(items), FOLD_AT):
            self._add_hashes(hash_items(items[start : start + FOLD_AT]))

    def _add_hashes(self, hashes: npt.NDArray[np.uint64]) -> None:
        if self._exact is not None:
            self._exact.update(hashes.tolist())
            if len(self._exact) <= EXACT_LIMIT:
                return
            self._registers = np.zeros(1 << self.precision, dtype=np.uint8)
            hashes = self._pop_exact()
        assert self._registers is not None
        if not len(hashes):
            return
        q = 64 - self.precision
        index = (hashes >> np.uint64(q)).astype(np.intp)
        rest = (hashes & np.uint64((1 << q) - 1)).astype(np.float64)  # exact: q ≤ 53 bits
        # frexp's exponent is the bit length, so the rank (leading zeros + 1) is q + 1 - it.
        rank = (q + 1 - np.frexp(rest)[1]).astype(np.uint8)
        np.maximum.at(self._registers, index, rank)

    def _pop_exact(self) -> npt.NDArray[np.uint64]:
        exact, self._exact = self._exact or set(), None
        return np.fromiter(exact, dtype=np.uint64, count=len(exact))


def _ertl_estimate(registers: npt.NDArray[np.uint8], q: int) -> float:
    """Ertl (2017), "New cardinality estimation algorithms for HyperLogLog sketches", the
    improved raw estimator: no bias tables, no switch to linear counting."""
    m = len(registers)
    counts = np.bincount(registers, minlength=q + 2).tolist()
    z = m * _tau(1 - counts[q + 1] / m)
    for k in range(q, 0, -1):
        z = 0.5 * (z + counts[k])
    z += m * _sigma(counts[0] / m)
    return _ALPHA_INF * m * m / z


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if z == previous:
            return z


def _tau(x: float) -> float:
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1 - x) ** 2 * y
        if z == previous:
            return z / 3
