"""Flat buffers: one update rule applied once to all of a group's parameters.

NumPy has no "foreach": an update rule of ten array operations costs ten
calls per parameter, and for small models those calls, not the arithmetic,
are the step. PyTorch's answer (``foreach``/``fused``) is one kernel over a
list of tensors; ours is to lay the group's optimizer state out in one
contiguous buffer per state name, each parameter's ``state[p][name]`` a view
into it, and to run the rule once on the concatenation:

    grad_flat  ← concatenate(g₁, g₂, ...)        (one copy)
    param_flat ← concatenate(θ₁, θ₂, ...)        (one copy)
    rule(param_flat, grad_flat, state buffers)   (the ordinary rule, once)
    θₖ ← param_flat[kₖ]                          (one copy per parameter)

The parameters themselves stay where they are (copied in and out each step),
so nothing that holds a parameter's array -- a model, a recorded graph, a
view -- can see a stale value.

The host scalars (``step``, ``mu_product``) get the same treatment: one small
array per name, each parameter's 0-d ``state[p]["step"]`` a view of one
element, so one ``steps += 1`` advances every counter of the group. What the
per-parameter path did with a Python loop per step -- advance each counter,
look each state up, compare each step -- shrinks to a few comparisons of id
lists (:meth:`FlatGroup.holds`).

Bit-identity: an *elementwise* operation gives every element the same bits
whether it runs on one array or on a concatenation, so a rule made only of
elementwise operations with the same Python-float coefficients gives exactly
the per-parameter result. Rules with per-parameter reductions (norms,
trust ratios) must not use this. Every scalar a rule reads (``step``,
``mu_product``) must therefore agree across the group; otherwise, and in every
case listed in :meth:`FlatGroup.fits`, the optimizer takes its per-parameter
path, which stays the reference.

Only parameters of at most ``MAX_SIZE`` elements go flat (biases, small
layers: where calls dominate). Switch it off with ``flat.ENABLED = False`` (or
inside ``with flat.disabled():``).
"""

import contextlib
from operator import attrgetter

import numpy as np

from .. import cuda_kernels

ENABLED = True

# Parameters with more elements than this stay per parameter: there a call's
# fixed cost is already small next to its arithmetic, and the copies in and
# out (and a working set beyond the caches) would cost more than they save.
MAX_SIZE = 2 ** 14

# Fetched with map() in C: the per-step checks then cost no Python loop.
_DATA = attrgetter("data")
_GRAD_DATA = attrgetter("grad.data")
# What a gradient must keep for its gather to be exact: class, shape and dtype.
_FORM = attrgetter("__class__", "shape", "dtype")


@contextlib.contextmanager
def disabled():
    """Inside the block every optimizer takes its per-parameter path."""
    global ENABLED
    previous, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = previous


def active():
    """True when flat steps may run: switched on, and no fused-kernel emulation
    running (it tests the per-parameter CUDA kernels)."""
    return ENABLED and not cuda_kernels._EMULATE


class FlatGroup:
    """The flat layout of one group: of its parameters with a gradient
    (``members``), those at ``positions`` go flat, with their state buffers
    ``names`` and host scalars ``scalars``; the others (``rest``) stay per
    parameter. Building it moves each state array into its flat array and
    points the state Tensor (the same object) at its view."""

    def __init__(self, members, positions, states, names, scalars):
        # Every object whose id is compared later is held here, so that no id
        # can be reused by a new object while the layout lives.
        self.members = tuple(members)
        self.member_ids = list(map(id, members))
        self.positions = list(positions)
        flat_ones = set(positions)
        self.rest = [k for k in range(len(members)) if k not in flat_ones]
        self.params = tuple(members[k] for k in positions)
        states = [states[k] for k in positions]
        self.arrays = tuple(p.data for p in self.params)
        self.array_ids = list(map(id, self.arrays))
        self.grad_forms = [(np.ndarray, a.shape, a.dtype) for a in self.arrays]
        sizes = [a.size for a in self.arrays]
        self.bounds = list(zip(np.cumsum([0] + sizes[:-1]).tolist(), np.cumsum(sizes).tolist()))
        dtype, total = self.arrays[0].dtype, sum(sizes)
        self.param_flat = np.empty(total, dtype)
        self.grad_flat = np.empty(total, dtype)
        self.param_views = self._views(self.param_flat)
        self.raveled = tuple(a.reshape(-1) for a in self.arrays)  # views: all C-contiguous
        self.buffers = {name: self._install(states, name, np.empty(total, dtype),
                                            self._views)
                        for name in names}
        self.scalars = {name: self._install(states, name,
                                            np.empty(len(states), states[0][name].data.dtype),
                                            _elements)
                        for name in scalars}
        self.names = tuple(names) + tuple(scalars)
        self.views = [state[name].data for state in states for name in self.names]
        self.view_ids = list(map(id, self.views))

    def _views(self, flat):
        return [flat[lo:hi].reshape(a.shape) for (lo, hi), a in zip(self.bounds, self.arrays)]

    @staticmethod
    def _install(states, name, flat, views_of):
        """Copy each state's ``name`` into its view of ``flat``, then make the
        view that state Tensor's array. Returns ``flat``."""
        for view, state in zip(views_of(flat), states):
            view[...] = state[name].data
            state[name].data = view  # the same Tensor, now a window on the flat array
        return flat

    @staticmethod
    def fits(params, states, names, scalars):
        """True when one flat update gives exactly the per-parameter updates:
        at least two parameters, all C-contiguous NumPy arrays of one float
        dtype, none 0-d, each owning its memory (no view: two parameters that
        overlap would see each other's update one after the other, not in a
        flat pass); each gradient a NumPy array of its parameter's dtype and
        shape; every state buffer present and shaped like its parameter; every
        host scalar in ``scalars`` a 0-d NumPy array, of one dtype and value
        across the group."""
        if len(params) < 2:
            return False
        dtype = params[0].data.dtype
        if dtype not in (np.float32, np.float64):
            return False
        for p, state in zip(params, states):
            data, grad = p.data, p.grad.data
            if type(data) is not np.ndarray or data.ndim == 0 or data.dtype != dtype \
                    or not data.flags.c_contiguous or data.base is not None \
                    or type(grad) is not np.ndarray or grad.dtype != dtype \
                    or grad.shape != data.shape:
                return False
            for name in names:
                buf = state.get(name)
                if buf is None or type(buf.data) is not np.ndarray \
                        or buf.data.shape != data.shape or buf.data.dtype != dtype:
                    return False
        return all(_same_host_scalar(states, name) for name in scalars)

    def holds(self, params, states):
        """True while nothing moved since the layout was built: the same
        parameters have a gradient (``params``, their state dicts ``states``),
        holding the same arrays, with gradients of the same form and the same
        state arrays; and the host scalars still agree. A replaced ``p.data``, a
        dropped gradient, a loaded state dict, a copied optimizer or a step
        count written in place fails. Identity checks of id lists, run in C."""
        if not active() or list(map(id, params)) != self.member_ids \
                or list(map(id, map(_DATA, self.params))) != self.array_ids \
                or list(map(_FORM, map(_GRAD_DATA, self.params))) != self.grad_forms:
            return False
        try:
            views = [states[k][name].data for k in self.positions for name in self.names]
        except KeyError:  # a state emptied (or an entry deleted) since
            return False
        return list(map(id, views)) == self.view_ids and all(
            flat.tobytes() == flat[:1].tobytes() * len(flat) for flat in self.scalars.values())

    def advance(self):
        """t ← t + 1 in every flat parameter's ``step`` (one array: one call);
        the new t as a float (the same for all: :meth:`holds` checked it)."""
        steps = self.scalars["step"]
        steps += 1
        return float(steps[0])

    def run(self, update):
        """Gather, ``update(param_flat, grad_flat, buffers)`` once, scatter back."""
        np.concatenate([p.grad.data.reshape(-1) for p in self.params], out=self.grad_flat)
        np.concatenate(self.raveled, out=self.param_flat)
        update(self.param_flat, self.grad_flat, self.buffers)
        for array, view in zip(self.arrays, self.param_views):
            array[...] = view


def _elements(flat):
    """A 0-d view of each element of the 1-d array ``flat``."""
    return [flat[k, ...] for k in range(len(flat))]


def _same_host_scalar(states, name):
    """Every ``state[name]`` a 0-d NumPy array with the first one's dtype and bits."""
    first = states[0].get(name)
    if first is None or type(first.data) is not np.ndarray or first.data.shape != ():
        return False
    dtype, bits = first.data.dtype, first.data.tobytes()
    for state in states[1:]:
        value = state.get(name)
        if value is None or type(value.data) is not np.ndarray or value.data.shape != () \
                or value.data.dtype != dtype or value.data.tobytes() != bits:
            return False
    return True


def flat_step(cache, key, params, states, names, update, scalars=("step",)):
    """Run ``update(param, grad, {name: array}, k)`` once over the flat buffers
    of the small parameters of ``params`` (their state dicts ``states``,
    buffers ``names``, host scalars ``scalars``), k being the first flat one's
    position in ``params``; return the positions that went flat, or [] (and
    change nothing) when all must go per parameter. ``cache`` (a dict) keeps the
    layout under ``key`` from one step to the next."""
    if not active():
        return []
    layout = cache.get(key)
    if layout is None or not layout.holds(params, states):
        cache.pop(key, None)
        small = [k for k, p in enumerate(params) if p.data.size <= MAX_SIZE]
        if not FlatGroup.fits([params[k] for k in small], [states[k] for k in small],
                              names, scalars):
            return []
        layout = cache[key] = FlatGroup(params, small, states, names, scalars)
    first = layout.positions[0]
    layout.run(lambda param, grad, buffers: update(param, grad, buffers, first))
    return layout.positions
