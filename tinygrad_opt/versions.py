"""Version counters: noticing that a value the backward needs was changed in place.

PyTorch gives every tensor a version counter, shared by its views and detached
aliases, bumped by each in-place write; a backward that reads a saved tensor
whose version moved since it was saved raises instead of using the new value.

Here the counter belongs to the *memory*: a write into an array marks the array
that owns its memory (every view and alias of it shares that owner) with the
time of the write, read from one process-wide clock. A node remembers the
clock's time when it was recorded (``Node.stamp``), so the backward asks one
question per saved tensor: "was its memory written after my stamp?" -- and,
in the common case where nothing at all was written in place since the node
was recorded (``stamp == now()``), not even that.

The clock and the table are shared by all threads on purpose: so is memory.
"""

import itertools
import weakref

from . import capture

_clock = itertools.count(1)  # next() is atomic under the GIL
# The time of the latest in-place write anywhere (0: none yet). Read directly as
# ``versions._now`` on the hot paths (every recorded node, every backward).
_now = 0
# id(owner array) -> [weak reference to the owner, time of its last in-place write]
_written = {}


def tick():
    """Advance the clock (an in-place change is about to be recorded) and return the time."""
    global _now
    _now = time = next(_clock)
    return time


def _owner(array):
    """What owns ``array``'s memory: itself, or the ``base`` its views point to
    (NumPy and CuPy point a view of a view straight at the owner)."""
    base = array.base
    return array if base is None else base


def _forget(key, ref):
    entry = _written.get(key)
    if entry is not None and entry[0] is ref:  # not a newer array that reused the id
        del _written[key]


@capture.host_call  # tg.jit bumps the counters again at every replay
def mark_written(*arrays, time=None):
    """Record an in-place write into each array's memory (seen by all its views
    and aliases) at ``time`` (default: one new tick of the clock for them all).
    Optimizers call it once per step with the parameters they updated."""
    if time is None:
        time = tick()
    for array in arrays:
        base = array.base  # (_owner, inlined: optimizers call this every step)
        owner = array if base is None else base
        key = id(owner)
        entry = _written.get(key)
        if entry is not None:  # (an entry goes with its owner, so this is owner's)
            entry[1] = time
            continue
        try:
            ref = weakref.ref(owner, lambda ref, key=key: _forget(key, ref))
        except TypeError:  # an array type without weak references: nothing to compare later
            continue
        _written[key] = [ref, time]


def written_since(array, time):
    """True if ``array``'s memory was written in place after ``time``."""
    owner = _owner(array)
    entry = _written.get(id(owner))
    return entry is not None and entry[1] > time and entry[0]() is owner
