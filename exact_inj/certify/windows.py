"""A preorder tree read as a stream of windows: the node state where each
window starts, from the codes' signs alone (docs/certificates.md, "Checked
as a stream").

The tree check replays codes with a stack (certify/tree.py).  Cut the codes
into consecutive windows; a window can be replayed on its own, by any
process, if it starts from the replay's state at its first code: the node
(P, N), the rows of P in the order they joined, and the stack of second
children still to visit.  That state is a function of the codes before the
window, and this module computes it while the codes stream past, keeping
only O(depth) of them.

Let s_t be the stack size before code t (+1 for a split, -1 for a leaf;
s_0 = 0).  The ancestors of node t are the codes p < t with s_p <= s_q for
every q in (p, t]: the *records*.  Node t lies in p's second child exactly
when s returns to s_p in (p, t], that is when the next record (or t itself)
has the same s; otherwise in its first child, whose second sibling is on
the stack.  Leaves are never records (s falls right after one).  In a valid
tree the records split on distinct rows, so there are at most M of them.

The shape is checked here too: s must first reach -1 at the last code (the
tree closes exactly at its end).  Which rows are split, and every leaf, are
left to the replay of the windows; the union of what the windows' replays
check is exactly what one replay of the whole tree checks.

>>> sh = Shape(m=3, total=5)        # split 0; rank leaf; split 1; two leaves
>>> sh.state()
(0, 0, [], [])
>>> sh.advance(np.array([0, -1, 1]))
>>> sh.state()                      # in row 0's second child, row 1's first
(2, 1, [1], [(0, 3, 0)])
>>> sh.advance(np.array([-1, -1])); sh.finish()
"""

from __future__ import annotations

import numpy as np

from .base import Invalid, num

__all__ = ["Shape"]


class Shape:
    """The running structure of a tree of ``total`` codes over ``m`` rows,
    fed a chunk of codes at a time by :meth:`advance`."""

    def __init__(self, m: int, total: int) -> None:
        self.m, self.total = m, total
        self.pos = 0        # codes seen
        self.s = 0          # the stack size before code ``pos``
        self.closed = False
        # The records before ``pos``: (position, s before it, row).
        self.records: list[tuple[int, int, int]] = []

    def state(self) -> tuple[int, int, list[int], list[tuple[int, int, int]]]:
        """(P, N, prows, stack) before code ``pos``, as the replay holds them:
        stack entries are (P, N, length of prows) of second children."""
        P = N = 0
        prows: list[int] = []
        stack: list[tuple[int, int, int]] = []
        recs = self.records
        for i, (p, sp, row) in enumerate(recs):
            if row >= self.m:
                raise Invalid(f"tree node {p} splits on row {num(row)}, but the layer has {self.m} rows")
            bit = 1 << row
            if (P | N) & bit:
                raise Invalid(f"tree node {p} splits on row {row}, which is already decided")
            after = recs[i + 1][1] if i + 1 < len(recs) else self.s
            if after == sp:
                N |= bit                       # in the second child
            else:
                stack.append((P, N | bit, len(prows)))
                P |= bit
                prows.append(row)
        if len(stack) != self.s:
            # Cannot happen for a tree whose sums stayed >= 0 (advance checks);
            # refused rather than trusted.
            raise Invalid(f"the tree's shape is inconsistent before node {self.pos}")
        return P, N, prows, stack

    def advance(self, codes: np.ndarray) -> None:
        """Take the next chunk of codes; Invalid when the tree closes before
        its last code (or has codes after it)."""
        L = len(codes)
        if not L:
            return
        if self.closed:
            raise Invalid(f"the tree has {self.total - self.pos} entries after its last leaf")
        step = np.where(codes >= 0, 1, -1).astype(np.int64)
        after = self.s + np.cumsum(step)           # s before the next code
        low = np.flatnonzero(after < 0)
        if len(low):
            j = self.pos + int(low[0])
            if j != self.total - 1:
                raise Invalid(f"the tree has {self.total - 1 - j} entries after its last leaf")
            self.closed = True
        before = np.concatenate(([self.s], after[:-1]))
        # Suffix minima of s over (p, end of chunk]: after[p:].
        suffix = np.minimum.accumulate(after[::-1])[::-1]
        keep_below = int(suffix[0])
        recs = [r for r in self.records if r[1] <= keep_below]
        idx = np.flatnonzero(before <= suffix)
        if len(idx) > self.m + 1:
            # More ancestors than rows: some row repeats on the path.  Only
            # the last m + 1 are needed to name one (state() does).
            idx = idx[-(self.m + 1):]
        recs.extend(zip((self.pos + idx).tolist(), before[idx].tolist(), codes[idx].tolist()))
        self.records = recs
        self.pos += L
        self.s = int(after[-1])
        if len(self.records) > self.m:
            self.state()  # raises: a row repeats among the ancestors

    def finish(self) -> None:
        """After the last chunk: the tree must have closed exactly there."""
        if self.pos != self.total:
            raise Invalid(f"the tree has {self.total} codes but {self.pos} were read")
        if not self.closed:
            raise Invalid("the tree ends before every case is closed")
