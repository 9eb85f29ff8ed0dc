"""A compact set of slots 0..size-1 that finds the lowest free slot fast.

Slots are grouped in blocks of 64. A block that was never touched is not
stored at all: it is known to be entirely free. A touched block is one small
`int` bitmap (bit set = slot taken) in a dict, so an empty /8, or an empty
IPv6 /64 (2**58 blocks), costs a few hundred bytes instead of one object per
address, the original's mistake.

Lowest free slot = the lower of
- the top of a heap that holds every touched block with a free slot (full
  blocks may linger in it and are dropped lazily when they surface), and
- `_fresh`, the lowest untouched block, which only moves up.
Both are O(log blocks) amortised. Inside a block the lowest clear bit is one
carry away: `~x & (x + 1)` is exactly that bit.
"""

from __future__ import annotations

import heapq

_BLOCK_BITS = 6
_BLOCK_SLOTS = 1 << _BLOCK_BITS
_SLOT_MASK = _BLOCK_SLOTS - 1
_FULL = (1 << _BLOCK_SLOTS) - 1


class FreeMap:
    """Slots 0..size-1, each free or taken; all free at first.

    Taking a taken slot or freeing a free one raises ValueError: the
    allocator's own bookkeeping must prevent both.
    """

    __slots__ = ("_block_count", "_blocks", "_free", "_fresh", "_heap", "_in_heap")

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, not {size}")
        self._block_count, tail = divmod(size, _BLOCK_SLOTS)
        self._free = size
        self._blocks: dict[int, int] = {}
        self._heap: list[int] = []
        self._in_heap: set[int] = set()
        # Invariant: `_fresh` is the lowest block not in `_blocks`.
        self._fresh = 0
        if tail:
            # Slots past the end of a partial last block are taken for good, so
            # that "full" means the same bitmap for every block.
            last = self._block_count
            self._block_count += 1
            self._blocks[last] = _FULL ^ ((1 << tail) - 1)
            self._push(last)
            if last == self._fresh:
                self._advance_fresh()

    @property
    def free_count(self) -> int:
        return self._free

    def _push(self, block: int) -> None:
        if block not in self._in_heap:
            self._in_heap.add(block)
            heapq.heappush(self._heap, block)

    def take(self, slot: int) -> None:
        """Mark a free slot taken."""
        block = slot >> _BLOCK_BITS
        bit = 1 << (slot & _SLOT_MASK)
        if not 0 <= slot < self._block_count << _BLOCK_BITS:
            raise ValueError(f"slot {slot} is out of range")
        bitmap = self._blocks.get(block)
        if bitmap is None:
            self._blocks[block] = bit
            self._push(block)
            if block == self._fresh:
                self._advance_fresh()
        elif bitmap & bit:
            raise ValueError(f"slot {slot} is already taken")
        else:
            self._blocks[block] = bitmap | bit
        self._free -= 1

    def put(self, slot: int) -> None:
        """Mark a taken slot free again."""
        block = slot >> _BLOCK_BITS
        bit = 1 << (slot & _SLOT_MASK)
        bitmap = self._blocks.get(block, 0)
        if not bitmap & bit:
            raise ValueError(f"slot {slot} is not taken")
        self._blocks[block] = bitmap ^ bit
        self._free += 1
        # A block that had room is in the heap already (the invariant).
        if bitmap == _FULL:
            self._push(block)

    def take_lowest(self) -> int | None:
        """Take the lowest free slot and return it, or None when all are taken."""
        if not self._free:
            return None
        heap, blocks, fresh = self._heap, self._blocks, self._fresh
        block = bitmap = 0
        while heap:
            block = heap[0]
            bitmap = blocks[block]
            if bitmap != _FULL:
                break
            self._in_heap.discard(heapq.heappop(heap))
        if not heap or fresh < block:
            # Free slots remain and no touched block below `fresh` has one, so
            # `fresh` is in range.
            block, bitmap = fresh, 0
            blocks[block] = 0
            self._push(block)
            self._advance_fresh()
        # The carry of +1 stops at the lowest clear bit; `~bitmap &` keeps only it.
        lowest_clear = ~bitmap & (bitmap + 1)
        blocks[block] = bitmap | lowest_clear
        self._free -= 1
        return (block << _BLOCK_BITS) | (lowest_clear.bit_length() - 1)

    def _advance_fresh(self) -> None:
        fresh, blocks = self._fresh + 1, self._blocks
        while fresh in blocks:
            fresh += 1
        self._fresh = fresh
