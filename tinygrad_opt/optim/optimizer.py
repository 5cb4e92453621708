"""The Optimizer base: PyTorch's contract, without its plumbing.

An optimizer owns ``param_groups`` (a list of dicts: ``"params"`` plus one
value per hyperparameter, filled from ``defaults``) and ``state`` (a
``defaultdict(dict)`` keyed by parameter, with PyTorch's names: ``step``,
``exp_avg``, ``momentum_buffer``, ...). ``step(closure=None)`` runs the closure
under grad mode, then the update under ``no_grad``, and returns the loss.

A first-order algorithm subclasses :class:`Optimizer`, validates its
hyperparameters in ``__init__`` and implements ``_step_group(group)``; the
arithmetic itself is one pure function on raw arrays (``_sgd``, ``_adam``,
...) next to the class, so that the reader sees the rule in one place and a
faster kernel can replace it. An algorithm that needs more than one gradient
per step (Newton, BFGS, L-BFGS) overrides ``step`` instead.

A rule made only of elementwise operations goes through :meth:`_step_elementwise`
(or, given the states, :meth:`_update_all`), which runs it once over flat
buffers holding a group's small parameters and their step counts
(``optim/flat.py``: torch's ``foreach`` for NumPy, bit-identical to the
per-parameter calls) and falls back to one call per parameter whenever
flattening would not be exact or safe.

Updates work on ``p.data`` and ``p.grad.data`` in place with the namespace of
the arrays (``numpy`` or ``cupy``), never write into ``p.grad`` (a gradient may
share memory with another), and never synchronise with a GPU.
"""

import numbers
from collections import defaultdict

import numpy as np

from .. import backend, capture, versions
from ..autograd.zero_grads import zero_grads
from ..op import enable_grad, no_grad
from ..tensor import Tensor
from . import flat

# State entries kept as 0-d float tensors on the host whatever the parameter's
# device: reading them in step() then never waits for a GPU.
HOST_SCALARS = ("step", "mu_product")

# Keys the learning-rate schedulers add to param groups (PyTorch's names): a
# snapshot may carry them whatever optimizer it comes from.
SCHEDULER_KEYS = frozenset(("initial_lr", "max_lr", "min_lr", "base_momentum", "max_momentum"))


class _RequiredParameter:
    """Marks a hyperparameter that every param group must give (no default)."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


def step_tensor(value=0.0):
    """The ``step`` counter as PyTorch keeps it: a 0-d float tensor on the host
    (float64 when the default dtype is float64, float32 otherwise). It stays on
    the CPU even for GPU parameters, so reading it never synchronises."""
    dtype = np.float64 if backend.get_default_dtype() == np.float64 else np.float32
    return Tensor.constant(np.array(value, dtype=dtype))


def check_number(name, value, low=None, high=None, *, low_open=False, high_open=False,
                 what=None):
    """One-sentence ValueError unless ``low <= value <= high`` (``<`` when open).

    ``check_number("lr", lr, 0.0)`` gives "Invalid learning rate: -1.0 (lr must be
    >= 0.0)." -- PyTorch's "Invalid learning rate: -1.0" followed by the rule.
    """
    if value is required:
        return
    label = what or name
    if not isinstance(value, numbers.Real):
        raise ValueError(f"Invalid {label}: {value!r} ({name} must be a number).")
    x = float(value)
    bad = x != x
    if low is not None:
        bad = bad or (x <= low if low_open else x < low)
    if high is not None:
        bad = bad or (x >= high if high_open else x > high)
    if bad:
        if low is not None and high is not None:
            lo = "(" if low_open else "["
            hi = ")" if high_open else "]"
            rule = f"in {lo}{low}, {high}{hi}"
        elif low is not None:
            rule = f"{'>' if low_open else '>='} {low}"
        else:
            rule = f"{'<' if high_open else '<='} {high}"
        raise ValueError(f"Invalid {label}: {value!r} ({name} must be {rule}).")


class Optimizer:
    """Base class of every optimizer.

    Args:
        params: an iterable of Tensors, or of dicts (parameter groups) each with
            a ``"params"`` entry and optional per-group hyperparameters.
        defaults: the hyperparameters of groups that do not set their own.

    Attributes:
        param_groups (list of dict): every group, with all hyperparameters filled.
        state (defaultdict of dict): per-parameter state, keyed by the parameter.
        defaults (dict): the constructor's hyperparameters.
        STATE_NAMES (frozenset or None): class attribute, every name a parameter's
            state may hold, each a host scalar (``step``, ``mu_product``) or an array
            shaped like the parameter; None where the state is not per parameter
            (the second-order optimizers). :meth:`load_state_dict` checks against it.
    """

    STATE_NAMES = None

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)
        self.param_groups = []
        self._validate_group(self.defaults)
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got a Tensor; wrap it in a list: [tensor].")
        if isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs; "
                            "please use a list instead.")
        if isinstance(params, dict):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got one dict; wrap the param group in a "
                            "list: [{'params': ...}].")
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list; pass the model's "
                             "parameters, e.g. model.parameters().")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # -- groups -----------------------------------------------------------------

    def add_param_group(self, param_group):
        """Add a group (a dict with ``"params"``); missing hyperparameters come
        from ``defaults``. A parameter may belong to one group only."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}.")
        if "params" not in param_group:
            raise ValueError("param_group has no 'params' entry: pass "
                             "{'params': [tensors], ...}.")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs; "
                            "please use a list instead.")
        params = list(params)
        if len(params) == 0:
            raise ValueError("optimizer got an empty parameter list in a param group.")
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__module__}.{type(p).__name__}.")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor (one computed by an op); "
                                 "optimize the leaves it was computed from, or .detach() it "
                                 "and set requires_grad=True.")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group contains the same parameter more than once; "
                             "list each parameter once.")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError("parameter group didn't specify a value of required "
                                 f"optimization parameter {name}.")
            group.setdefault(name, default)
        self._validate_group(group)
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in params):
            raise ValueError("some parameters appear in more than one parameter group; "
                             "each parameter may belong to one group only.")
        self.param_groups.append(group)

    def _validate_group(self, group):
        """Check a group's hyperparameters, one sentence per error. Runs on
        ``defaults`` and on every added group (subclasses override it)."""

    # -- the step ---------------------------------------------------------------

    def zero_grad(self, set_to_none=True):
        """Forget every parameter's gradient: ``grad = None`` by default, or a
        fresh zero array with ``set_to_none=False`` (never written in place:
        a gradient array may be shared)."""
        zero_grads([p for group in self.param_groups for p in group["params"]], set_to_none)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:  # every override too: see step's decorator
            cls.step = capture.host_call(cls.step)

    # tg.jit does not record a step op by op but runs it again at every replay:
    # it reads values that change from call to call (the step count, a scheduled lr).
    @capture.host_call
    def step(self, closure=None):
        """One update of every parameter that has a gradient.

        ``closure``, if given, re-evaluates the model (zero_grad, forward,
        backward) and returns the loss; it runs with grad mode on. Returns
        that loss (None without a closure).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._step_group(group)
        # The parameters were written in place: a graph recorded before this
        # step that still needs their old values must refuse to backward.
        versions.mark_written(*[p.data for group in self.param_groups
                                for p in group["params"] if p.grad is not None])
        return loss

    def _step_group(self, group):
        raise NotImplementedError(f"{type(self).__name__} does not implement _step_group "
                                  "(or step).")

    # -- checkpoints ------------------------------------------------------------

    def state_dict(self):
        """A snapshot: ``{"state": {id: {name: value}}, "param_groups": [...]}``
        where parameters are integer ids in group order (as PyTorch) and state
        tensors are copies, so later steps never change a saved snapshot."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: _copy_value(v) for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {}
        for p, values in self.state.items():
            if id(p) in index:
                state[index[id(p)]] = {k: _copy_value(v) for k, v in values.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore a snapshot from :meth:`state_dict` (or ``tg.load``).

        The snapshot must come from the same kind of optimizer (its hyperparameter
        and state names), with as many groups and parameters per group, and each
        state array shaped like its parameter; otherwise a ValueError says which,
        and nothing changes. State arrays are copied onto each parameter's device
        and dtype (``step`` stays a host scalar); hyperparameters come from the
        snapshot (one the snapshot lacks keeps its current value).
        """
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict \
                or "state" not in state_dict:
            raise ValueError("load_state_dict expects a dict with 'state' and 'param_groups' "
                             "as made by Optimizer.state_dict().")
        saved_groups = list(state_dict["param_groups"])
        id_map = self._check_snapshot(saved_groups, state_dict["state"])
        state = defaultdict(dict)
        for key, values in state_dict["state"].items():
            if int(key) in id_map:
                p = id_map[int(key)]
                state[p] = {name: _cast_state(name, v, p) for name, v in values.items()}
        new_groups = []
        for g, s in zip(self.param_groups, saved_groups):
            new = {k: v for k, v in g.items() if k != "params"}
            for k, v in s.items():
                if k == "params":
                    continue
                v = _as_python(v)
                if isinstance(g.get(k), (tuple, list)) and isinstance(v, (list, np.ndarray)):
                    # a checkpoint file hands tuples back as lists or arrays
                    v = type(g[k])(_as_python(x) for x in v)
                new[k] = _copy_value(v)
            new["params"] = g["params"]
            new_groups.append(new)
        self.state = state
        self.param_groups = new_groups

    def _check_snapshot(self, saved_groups, saved_state):
        """Validate a snapshot against this optimizer before anything is changed
        (one ValueError sentence per mismatch). Returns {saved id: parameter}."""
        id_map = self._match_groups(saved_groups)
        for key, values in saved_state.items():
            p = id_map.get(int(key))
            if p is not None and self.STATE_NAMES is not None:
                self._check_state(key, values, p)
        return id_map

    def _match_groups(self, saved_groups):
        """The saved groups against ours: count, sizes, hyperparameter names."""
        groups = self.param_groups
        if len(groups) != len(saved_groups):
            raise ValueError(f"loaded state dict has a different number of parameter groups "
                             f"({len(saved_groups)}) than this optimizer ({len(groups)}).")
        id_map = {}
        for i, (g, s) in enumerate(zip(groups, saved_groups)):
            if not isinstance(s, dict) or "params" not in s:
                raise ValueError(f"{type(self).__name__}.load_state_dict: saved parameter group "
                                 f"{i} is not a dict with 'params'; pass what "
                                 "Optimizer.state_dict() made.")
            if len(g["params"]) != len(s["params"]):
                raise ValueError(f"loaded state dict contains a parameter group (group {i}, "
                                 f"{len(s['params'])} parameters) that doesn't match the size "
                                 f"of optimizer's group ({len(g['params'])} parameters).")
            foreign = sorted(set(s) - set(g) - SCHEDULER_KEYS)
            if foreign:
                raise self._another_kind(f"the saved group {i} has hyperparameters "
                                         f"{', '.join(foreign)} that")
            for saved_id, p in zip(s["params"], g["params"]):
                id_map[int(saved_id)] = p
        return id_map

    def _check_state(self, key, values, param):
        """One parameter's saved state: names this optimizer keeps, arrays shaped
        like the parameter (host scalars aside)."""
        foreign = sorted(set(values) - self.STATE_NAMES)
        if foreign:
            raise self._another_kind(f"the saved state of parameter {key} holds "
                                     f"{', '.join(foreign)}, which")
        for entry, value in values.items():
            shape = tuple(getattr(value, "shape", ()))
            if entry not in HOST_SCALARS and shape != tuple(param.shape):
                raise ValueError(f"{type(self).__name__}.load_state_dict: the saved {entry!r} "
                                 f"of parameter {key} has shape {shape} but the parameter has "
                                 f"shape {tuple(param.shape)}; the state dict comes from a "
                                 "model of another size, load it into the same architecture.")

    def _another_kind(self, what):
        name = type(self).__name__
        return ValueError(f"{name}.load_state_dict: {what} {name} does not have, so the state "
                          "dict comes from another kind of optimizer; load it into the "
                          "optimizer class that saved it.")

    def __getstate__(self):
        # A scheduler wraps ``step`` on the instance (to notice a scheduler that
        # steps first); a copy must not carry a wrapper that steps the original.
        state = dict(self.__dict__)
        state.pop("step", None)
        state.pop("_opt_called", None)
        # Flat layouts hold views of the state; a copy rebuilds its own.
        state.pop("_flat_layouts", None)
        return state

    # -- description ------------------------------------------------------------

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    # -- helpers for subclasses -------------------------------------------------

    def _params_with_grad(self, group):
        """The group's parameters that have a gradient (the others are skipped,
        as in PyTorch)."""
        return [p for p in group["params"] if p.grad is not None]

    def _lazy_state(self, p, zeros=(), **scalars):
        """``self.state[p]``, created at p's first step as PyTorch does: ``step`` = 0,
        then each host scalar of ``scalars`` (name=value), then a zero array shaped
        like p for each name in ``zeros``, in that order."""
        state = self.state[p]
        if len(state) == 0:
            xp = backend.xp_of((p.data,))
            state["step"] = step_tensor()
            for name, value in scalars.items():
                state[name] = step_tensor(value)
            for name in zeros:
                state[name] = Tensor.constant(xp.zeros_like(p.data))
        return state

    def _step_elementwise(self, group, names, update, new_state=None, counts_steps=True):
        """One step of an elementwise rule for every parameter of ``group`` that
        has a gradient: ``update(param, grad, {name: array}, t)`` on raw arrays,
        t being the parameter's ``step`` after this step's increment (None when
        the algorithm keeps no step count, ``counts_steps=False``).

        ``new_state(p)`` gives p's state dict, created at its first step
        (default: :meth:`_lazy_state` with a zero array for each of ``names``).
        A rule that makes a buffer at its first step instead (SGD's momentum)
        puts it into the dict of arrays it is given, and the buffer joins p's
        state.

        While the group's flat layout (:mod:`.flat`) still holds, the whole step
        is the layout's: one ``+= 1`` advances every flat step count, one call of
        the rule updates every flat parameter; only the large ones go one by one.
        Otherwise every state is looked up and advanced in turn and
        :meth:`_update_all` runs the rule, building a new layout where it can.
        """
        params = self._params_with_grad(group)
        states = list(map(self.state.__getitem__, params))
        if new_state is None:
            def new_state(p):
                return self._lazy_state(p, names)
        layout = self.__dict__.get("_flat_layouts", {}).get(id(group))
        if layout is not None and layout.holds(params, states):
            t = layout.advance() if counts_steps else None
            layout.run(lambda param, grad, arrays: update(param, grad, arrays, t))
            for k in layout.rest:
                state = new_state(params[k])
                _update_one(params[k], state, names, update,
                            advance_step(state) if counts_steps else None)
            return
        states = [new_state(p) for p in params]
        steps = [advance_step(state) for state in states] if counts_steps else None
        self._update_all(group, params, states, names,
                         lambda param, grad, arrays, k: update(
                             param, grad, arrays, None if steps is None else steps[k]),
                         scalars=("step",) if counts_steps else ())

    def _update_all(self, group, params, states, names, update, scalars=("step",)):
        """Apply an elementwise rule to every parameter of ``params`` (with their
        state dicts ``states`` = ``self.state[p]``, state buffer names ``names``):
        ``update(param, grad, {name: array}, k)`` on raw arrays, k being the
        parameter's position in ``params`` (for its host scalars: ``step``, ...).

        The small parameters (at most ``flat.MAX_SIZE`` elements), when it is safe
        (see :mod:`.flat`: among others, their host ``scalars`` agree), take one
        call of the rule over flat buffers holding them all -- the same bits, far
        fewer calls -- with the first one's k standing for all; the others take
        one call each. Returns the positions that went flat (empty if none).
        Only rules made of elementwise operations may come here: a per-parameter
        reduction would change on a concatenation.
        """
        layouts = self.__dict__.setdefault("_flat_layouts", {})
        if id(group) not in layouts and layouts:  # forget layouts of replaced groups
            live = {id(g) for g in self.param_groups}
            for key in [k for k in layouts if k not in live]:
                del layouts[key]
        went_flat = flat.flat_step(layouts, id(group), params, states, names, update, scalars)
        flat_ones = set(went_flat)
        for k, (p, state) in enumerate(zip(params, states)):
            if k not in flat_ones:
                _update_one(p, state, names, update, k)
        return went_flat


def _update_one(p, state, names, update, extra):
    """``update(p.data, p.grad.data, arrays, extra)`` on p's own state arrays; a
    buffer of ``names`` that p's state lacks and the rule put into ``arrays``
    (made at the first step) joins the state."""
    arrays = {name: state[name].data for name in names if name in state}
    update(p.data, p.grad.data, arrays, extra)
    for name in names:
        if name not in state:
            state[name] = Tensor.constant(arrays[name])


def advance_step(state):
    """t ← t + 1 in the host ``step`` tensor of ``state``, in place; the new t as a float."""
    step_t = state["step"].data
    step_t += 1
    return float(step_t)


def _copy_value(value):
    if isinstance(value, Tensor):
        return Tensor.constant(value.data.copy())
    if isinstance(value, list):
        return [_copy_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy_value(v) for k, v in value.items()}
    if hasattr(value, "shape") and hasattr(value, "copy") and not _is_scalar(value):
        return value.copy()
    return value


def _is_scalar(value):
    return isinstance(value, np.generic)


def _as_python(value):
    """A 0-d array or NumPy scalar from a checkpoint file back to a Python number."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "U":
        return value.item() if value.ndim == 0 else value.tolist()
    return value


def _cast_state(name, value, param):
    """A saved state value onto ``param``'s device and dtype (a fresh copy).
    The scalars ``step`` and ``mu_product`` stay host tensors of their own dtype."""
    if isinstance(value, Tensor):
        array = value.data
    elif hasattr(value, "shape") and not isinstance(value, np.generic):
        array = value
    else:
        return value
    if name in HOST_SCALARS:
        host = backend.to_host(array)
        return Tensor.constant(np.array(host, dtype=host.dtype if host.dtype.kind == "f"
                                      else np.float32))
    if array.dtype.kind in "fc":
        array = array.astype(param.dtype, copy=False)
    if backend.device_of(array) != param.device:
        array = backend.transfer(array, param.device)
    if array is value or (isinstance(value, Tensor) and array is value.data):
        array = array.copy()
    return Tensor.constant(array)
