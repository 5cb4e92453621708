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

import numpy as np

from .. import cuda_kernels

ENABLED = True

# Parameters with more elements than this stay per parameter: there a call's
# fixed cost is already small next to its arithmetic, and the copies in and
# out (and a working set beyond the caches) would cost more than they save.
MAX_SIZE = 2 ** 14


@contextlib.contextmanager
def disabled():
    """Inside the block every optimizer takes its per-parameter path."""
    global ENABLED
    previous, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = previous


class FlatGroup:
    """The flat layout of one group's parameters (those with a gradient) and of
    their state buffers ``names``. Building it moves each state array into the
    flat buffer and points the state Tensor (the same object) at its view."""

    def __init__(self, params, states, names):
        first = params[0].data
        self.params = tuple(params)
        self.arrays = tuple(p.data for p in params)
        self.names = tuple(names)
        self.dtype = first.dtype
        sizes = [a.size for a in self.arrays]
        self.bounds = list(zip(np.cumsum([0] + sizes[:-1]).tolist(), np.cumsum(sizes).tolist()))
        total = sum(sizes)
        self.param_flat = np.empty(total, self.dtype)
        self.grad_flat = np.empty(total, self.dtype)
        self.param_views = self._views(self.param_flat)
        self.raveled = tuple(a.reshape(-1) for a in self.arrays)  # views: all C-contiguous
        self.buffers = {}
        self.state_views = []  # per parameter: the state arrays it installed
        for name in self.names:
            self.buffers[name] = np.empty(total, self.dtype)
            for view, state in zip(self._views(self.buffers[name]), states):
                view[...] = state[name].data
                state[name].data = view  # the same Tensor, now a window on the buffer
        for state in states:
            self.state_views.append(tuple(state[name].data for name in self.names))

    def _views(self, flat):
        return [flat[lo:hi].reshape(a.shape) for (lo, hi), a in zip(self.bounds, self.arrays)]

    @staticmethod
    def fits(params, states, names, scalars):
        """True when one flat update gives exactly the per-parameter updates:
        at least two parameters, all C-contiguous NumPy arrays of one float
        dtype, none 0-d, each owning its memory (no view: two parameters that
        overlap would see each other's update one after the other, not in a
        flat pass); each gradient a NumPy array of its parameter's dtype and
        shape; every state buffer present and shaped like its parameter; every
        scalar in ``scalars`` equal across the group."""
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
        return _scalars_agree(states, scalars)

    def matches(self, params, states):
        """True while nothing moved since the layout was built: the same
        parameters, holding the same arrays, with the same state arrays (a
        replaced ``p.data``, a loaded state dict or a copied optimizer fails)."""
        if len(params) != len(self.params):
            return False
        for p, own, array, state, installed in zip(params, self.params, self.arrays, states,
                                                   self.state_views):
            if p is not own or p.data is not array or p.grad.data.shape != array.shape \
                    or p.grad.data.dtype != self.dtype or type(p.grad.data) is not np.ndarray:
                return False
            for name, view in zip(self.names, installed):
                if state[name].data is not view:
                    return False
        return True

    def run(self, update):
        """Gather, ``update(param_flat, grad_flat, buffers)`` once, scatter back."""
        np.concatenate([p.grad.data.reshape(-1) for p in self.params], out=self.grad_flat)
        np.concatenate(self.raveled, out=self.param_flat)
        update(self.param_flat, self.grad_flat, self.buffers)
        for array, view in zip(self.arrays, self.param_views):
            np.copyto(array, view)


def _scalars_agree(states, scalars):
    """Every host scalar in ``scalars`` (``step``, ...) the same in all ``states``."""
    first = states[0]
    return all(float(state[s].data) == float(first[s].data)
               for state in states[1:] for s in scalars)


def flat_step(cache, key, params, states, names, update, scalars=("step",)):
    """Run ``update(param, grad, {name: array})`` once over the flat buffers of
    ``params`` (their state dicts ``states``, buffers ``names``) and return True;
    or return False, changing nothing, when the caller must go per parameter.
    ``cache`` (a dict) keeps the layout under ``key`` from one step to the next.
    Off while fused-kernel emulation runs (it tests the per-parameter CUDA kernels)."""
    if not ENABLED or cuda_kernels._EMULATE:
        return False
    layout = cache.get(key)
    if layout is None or not layout.matches(params, states):
        cache.pop(key, None)
        if not FlatGroup.fits(params, states, names, scalars):
            return False
        layout = cache[key] = FlatGroup(params, states, names)
    elif not _scalars_agree(states, scalars):
        del cache[key]
        return False
    layout.run(update)
    return True
