"""Recording the array calls of one step, for :func:`tinygrad_opt.jit` to replay.

While a step is captured, every NumPy array the step reads from a Tensor is
seen through :class:`Traced`, a subclass of ``numpy.ndarray`` that does the
arithmetic as usual and, through NumPy's own override protocols
(``__array_ufunc__`` for ``a + b``, ``a.sum()``, ``np.exp``, ...;
``__array_function__`` for ``np.concatenate``, ``np.where``, ...), appends one
:class:`Call` per operation to the :class:`Recording`: the function, its array
operands and the buffer its result went into. A replay calls them again, in
order, with ``out=`` that same buffer -- the same functions on the same memory,
so the same bits -- and with no Tensor, no graph, no per-op dispatch in between.

Views (``a.T``, ``a[1:]``, ``a.reshape(...)`` of a contiguous array) cost
nothing to replay: they look at a buffer that the replay refills in place.

What must not be recorded op by op runs again as Python at every replay: the
functions marked :func:`host_call` (an optimizer's ``step``, ``zero_grad``, a
scheduler's ``step``, gradient clipping, the version-counter bumps). They
read values that change from call to call (the step count, a learning rate),
and they already update their state in place.

A decision that eager code takes on the values of an input (does any label equal
``ignore_index``?) is taken with :func:`decide`: the replay takes it again on
each call's inputs before it starts, and the step is recorded again when it
comes out otherwise.

What cannot be replayed is refused while recording, with one sentence: reading
a value into Python (``.item()``, ``float()``, ``bool()``: an ``if`` on data),
a random draw. Anything that slips past (a value computed outside the arrays
the capture sees) is caught by :func:`tinygrad_opt.jit` recording the step
twice and comparing (:meth:`Recording.layout`).
"""

import functools
import operator
import threading

import numpy as np

from . import backend

# The recording in progress, or None (eager). Read on hot paths (Op.apply).
RECORDING = None


class CaptureError(RuntimeError):
    """What tg.jit cannot capture or replay, said in one sentence."""


class Call:
    """One recorded call: ``function(*args, **kwargs)``; ``writes`` are the arrays it
    writes into (its ``out=`` buffers, or the target of an in-place function)."""

    __slots__ = ("args", "function", "host", "kwargs", "writes")

    def __init__(self, function, args, kwargs, writes=(), host=False):
        self.function, self.args, self.kwargs = function, args, kwargs
        self.writes, self.host = writes, host


class Recording:
    """The calls of one traced run, and what the replay needs around them."""

    def __init__(self):
        self.calls = []
        self.thread = threading.get_ident()
        self.paused = 0        # > 0 inside a host call: its own array work is not recorded
        self.watched = {}      # id(tensor) -> (tensor, its plain array, the Traced view of it)
        self.leaves = []       # the tensors whose .grad the backward set
        self.snapshots = {}    # id(owner) -> (owner, copy at first sight): scratch arrays
        # ids of the memory a replay keeps current by itself: the inputs the jit fills,
        # the watched tensors' arrays, the calls' results (no snapshot needed)
        self.live = set()
        self.expect_no_grad = []  # leaves whose .grad must be None when a replay starts
        self.inputs = set()       # ids of the input buffers the jit fills before a replay
        self.overwritten = set()  # ... of those the step wrote into
        self.preconditions = []   # (function, args, value): decide() at every replay

    # -- tensors and arrays seen ------------------------------------------------------------

    def watch(self, inputs):
        """Show the inputs of an op to the capture: each Tensor's plain array becomes a
        :class:`Traced` view of the same memory until the recording ends."""
        if threading.get_ident() != self.thread or self.paused:
            return
        for t in inputs:
            if _is_function(t):
                raise CaptureError(
                    "tg.jit: an op of the step is given a Python function (a callback that "
                    "its backward calls, as K-FAC's factor capture does); a replay runs the "
                    "arrays again, not the callback. Run this step without tg.jit.")
            if not hasattr(t, "_node"):  # not a Tensor: a number, or an array the op takes
                continue
            data = t.data
            if type(data) is np.ndarray:
                view = data.view(Traced)
                self.watched.setdefault(id(t), (t, data, view))
                self.live.add(id(_owner(data)))
                t.data = view
            elif not isinstance(data, np.ndarray):
                raise CaptureError(
                    f"tg.jit captures steps on NumPy (CPU) arrays; this step has a "
                    f"{type(data).__module__}.{type(data).__name__} of shape {tuple(data.shape)}: "
                    "run it without tg.jit on that device.")

    def assigned_grad(self, leaf, was_none):
        """The backward set ``leaf.grad`` (to a new gradient when ``was_none``, else to
        the sum with the old one): the replay sets it again. A new gradient that no
        zero_grad of this step made room for needs ``leaf.grad is None`` at every call
        (:attr:`expect_no_grad`): otherwise eager would have added to the old one."""
        if threading.get_ident() != self.thread or self.paused:
            return
        self.calls.append(Call(setattr, (leaf, "grad", leaf.grad), {}, host=True))
        self.leaves.append(leaf)
        if was_none and not any(c.host and getattr(c.function, "clears_grads", False)
                                and _mentions(c.args[0], leaf) for c in self.calls):
            self.expect_no_grad.append(leaf)

    # -- calls ------------------------------------------------------------------------------

    def record(self, function, args, kwargs, result, writes=()):
        """Append a call whose operands ``args``/``kwargs`` are plain arrays; return its
        result as the step sees it (Traced). A new result array becomes the call's
        ``out=`` buffer, so that the replay writes into the same memory."""
        if result is None:
            self.calls.append(Call(function, args, kwargs, writes))
            return None
        if isinstance(result, (tuple, list)):  # several results: only views of operands
            if all(isinstance(v, np.ndarray) and _shares_with(v, args, kwargs) for v in result):
                return type(result)(v.view(Traced) for v in result)
            raise CaptureError(
                f"tg.jit: {_name(function)} returns several arrays computed from data; "
                "a captured step cannot replay it. Call it outside the function.")
        if isinstance(result, np.ndarray) and _shares_with(result, args, kwargs):
            return result.view(Traced)  # a view of an operand: nothing to compute again
        if isinstance(result, np.generic):
            result = np.asarray(result).copy()  # a NumPy scalar: a 0-d buffer to write into
        elif not isinstance(result, np.ndarray):
            raise CaptureError(
                f"tg.jit: {_name(function)} returned the Python value {result!r}, computed "
                "from a tensor's values, while the step was captured; a replay could not "
                "compute it again. Keep the computation in tensor operations.")
        self.calls.append(_into(function, args, kwargs, result))
        self.live.add(id(_owner(result)))
        return result.view(Traced)

    def before_write(self, targets):
        """An array the recording did not make (a scratch array from ``xp.zeros``) is
        about to be written: the replay will first put back what it holds now."""
        for target in targets:
            owner = _owner(target)
            if id(owner) in self.inputs:
                self.overwritten.add(id(owner))
            if id(owner) not in self.live and id(owner) not in self.snapshots:
                self.snapshots[id(owner)] = (owner, owner.copy())

    def host_call(self, function, args, kwargs):
        """Run ``function`` now, with its own array work unrecorded, and again at every
        replay."""
        args = tuple(list(a) if _is_iterator(a) else a for a in args)
        if any(_is_function(a) for a in (*args, *kwargs.values())):
            raise CaptureError(
                f"tg.jit: {_name(function)} is given a function (a closure) while the step is "
                "captured; at a replay that closure would compute with the tensors of the "
                "recorded call, not the new ones. Call it outside tg.jit (opt.step(closure) "
                "re-evaluates the model itself: L-BFGS and the second-order methods).")
        self.calls.append(Call(function, args, kwargs, host=True))
        self.paused += 1
        try:
            return function(*args, **kwargs)
        finally:
            self.paused -= 1

    def decide(self, function, args):
        """``function(*args)`` now, and again on the new inputs before every replay."""
        args = _plain(args)
        self.paused += 1
        try:
            value = function(*args)
        finally:
            self.paused -= 1
        self.preconditions.append((function, args, value))
        return value

    # -- the end -------------------------------------------------------------------------

    def finish(self):
        """Put every watched Tensor and assigned gradient back on plain arrays. A tensor
        whose ``.data`` the step rebound keeps its array, holding the new values (here
        and, by one more call, at every replay): the replay reads that array."""
        for t, data, view in self.watched.values():
            if t.data is not view:
                self._rebound(t, data)
            t.data = data
        for leaf in self.leaves:
            if leaf.grad is not None and type(leaf.grad.data) is Traced:
                leaf.grad.data = leaf.grad.data.view(np.ndarray)
        for call in self.calls:  # tensors handed to host calls (a gradient, a loss)
            for arg in call.args if call.host else ():
                if type(getattr(arg, "data", None)) is Traced and hasattr(arg, "_node"):
                    arg.data = arg.data.view(np.ndarray)

    def _rebound(self, t, data):
        new = t.data.view(np.ndarray) if isinstance(t.data, np.ndarray) else t.data
        if not isinstance(new, np.ndarray) or new.shape != data.shape or new.dtype != data.dtype:
            raise CaptureError(
                f"tg.jit: the step replaced the .data of a tensor of shape {data.shape} "
                f"{data.dtype} with {getattr(new, 'shape', type(new).__name__)} "
                f"{getattr(new, 'dtype', '')}; a replay writes into the arrays it recorded. "
                "Write in place (t.data[...] = new) or keep the shape and dtype.")
        if new is not data:
            np.copyto(data, new)
            self.calls.append(Call(np.copyto, (data, new), {}, writes=(data,)))

    def program(self):
        """The replay: (function, args, kwargs) triples, scratch arrays reset first."""
        resets = [(np.copyto, (owner, saved), {}) for owner, saved in self.snapshots.values()]
        return resets + [(c.function, c.args, c.kwargs) for c in self.calls]

    def layout(self, inputs=()):
        """A description of the calls that two recordings of the same step share
        exactly: functions, the buffers they use (numbered in order of first use), the
        views into them, and the value of every constant. Two traces of one step that
        differ here computed something outside the capture's sight."""
        numbering = {id(_owner(a)): ("input", k) for k, a in enumerate(inputs)}
        for t, data, _view in self.watched.values():
            if t.requires_grad:  # a parameter: the same object on every call
                numbering.setdefault(id(data), ("tensor", id(t)))
        shapes = []
        for call in self.calls:
            for written in call.writes:
                owner = _owner(written)
                numbering.setdefault(id(owner), ("buffer", len(numbering)))
            shapes.append((_name(call.function), call.host,
                           _describe(call.args, numbering), _describe(call.kwargs, numbering)))
        return shapes


class Traced(np.ndarray):
    """A NumPy array whose operations are recorded while a capture runs (and that
    behaves as a plain array otherwise)."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        args = _plain(inputs)
        out = kwargs.get("out")
        if out is not None:
            kwargs = dict(kwargs, out=_plain(out))
        function = ufunc if method == "__call__" else getattr(ufunc, method)
        recording = _active()
        if recording is not None:
            if out is not None:
                recording.before_write(kwargs["out"])
            elif method == "at":
                recording.before_write(args[:1])
        result = function(*args, **kwargs)
        if out is not None:
            if recording is not None:
                recording.record(function, args, kwargs, None, writes=kwargs["out"])
            return out[0] if len(out) == 1 else out  # `a += b` keeps `a` itself
        if method == "at":
            if recording is not None:
                recording.record(function, args, kwargs, None, writes=(args[0],))
            return None
        if recording is None:
            return result
        return recording.record(function, args, kwargs, result)

    def __array_function__(self, func, types, args, kwargs):
        return _call(func, args, kwargs)

    # Methods that copy or read values without going through the two protocols.
    def __getitem__(self, index):
        if _active() is not None and any(getattr(i, "dtype", None) == np.bool_
                                         for i in (index if isinstance(index, tuple) else
                                                   (index,))):
            raise CaptureError(
                "tg.jit: indexing with a boolean mask gives as many elements as the mask "
                "holds True values, which changes from call to call; a replay writes into "
                "arrays of fixed shapes. Use tg.where(mask, x, 0) instead.")
        return _call(operator.getitem, (self, index), {})

    def __setitem__(self, index, value):
        plain, index, value = _plain((self, index, value))
        recording = _active()
        if recording is not None:
            recording.before_write((plain,))
        plain[index] = value
        if recording is not None:
            recording.record(operator.setitem, (plain, index, value), {}, None, writes=(plain,))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def copy(self, order="C"):
        return _call(np.copy, (self,), {"order": order})

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        return _call(np.astype, (self, dtype), {})

    def reshape(self, *shape, **kwargs):
        return _call(np.reshape, (self, shape[0] if len(shape) == 1 else shape), kwargs)

    def ravel(self, order="C"):
        return _call(np.ravel, (self,), {"order": order})

    def flatten(self, order="C"):
        return _call(np.copy, (np.ravel(self, order),), {})

    def fill(self, value):
        self[...] = value

    def __bool__(self):
        if _active() is None:
            return bool(self.view(np.ndarray))
        raise CaptureError(
            "tg.jit: the step takes a decision on a tensor's value (an `if`, `while`, `and`/"
            "`or` or bool()) while it is captured; a replay would always follow the first "
            "call's branch. Decide outside the function, or compute both sides and pick "
            "with tg.where.")


def _method(function):
    """A method of Traced that records ``function(self, ...)``."""
    def method(self, *args, **kwargs):
        return _call(function, (self, *args), kwargs)
    method.__name__ = function.__name__
    return method


def _reader(name):
    """A method of Traced that hands a value to Python: refused while recording."""
    def method(self, *args, **kwargs):
        if _active() is None:
            return getattr(self.view(np.ndarray), name)(*args, **kwargs)
        raise CaptureError(
            f"tg.jit: the step reads a tensor's value into Python ({name}) while it is "
            "captured; a replay would reuse the first call's number. Return the tensor "
            "from the function and read it after the call (loss.item() outside).")
    method.__name__ = name
    return method


for _name_, _function in (("argmax", np.argmax), ("argmin", np.argmin), ("dot", np.dot),
                          ("take", np.take), ("repeat", np.repeat), ("cumsum", np.cumsum),
                          ("cumprod", np.cumprod), ("round", np.round), ("sort", np.sort),
                          ("argsort", np.argsort), ("clip", np.clip), ("nonzero", np.nonzero),
                          ("searchsorted", np.searchsorted), ("compress", np.compress),
                          ("put", np.put), ("trace", np.trace)):
    setattr(Traced, _name_, _method(_function))
for _name_ in ("item", "tolist", "tobytes", "__float__", "__int__", "__index__",
               "__complex__"):
    setattr(Traced, _name_, _reader(_name_))


class _RecordingNumpy:
    """NumPy as an op sees it while a step is recorded (``xp_of`` of a Traced array):
    the same functions, except that those making an array from a shape (``xp.zeros``,
    ``xp.empty``, ``xp.arange``, ...) hand back a Traced one, so that the writes into it
    and what is computed from it are recorded too."""

    def __getattr__(self, name):
        return getattr(np, name)


def _traced_maker(make):
    def maker(*args, **kwargs):
        array = make(*args, **kwargs)
        return array.view(Traced) if _active() is not None else array
    maker.__name__ = make.__name__
    return maker


for _name_ in ("zeros", "empty", "ones", "full", "arange", "eye", "identity", "linspace"):
    setattr(_RecordingNumpy, _name_, staticmethod(_traced_maker(getattr(np, _name_))))
RECORDING_NUMPY = _RecordingNumpy()
backend.register_backend(Traced, RECORDING_NUMPY, lambda array: "cpu")


# -- host calls ---------------------------------------------------------------------------

def host_call(function):
    """Mark ``function`` as a step of Python that a capture does not record op by
    op but runs again at every replay (it reads per-call values: a step count, a
    learning rate; or it changes Python state: ``p.grad = None``)."""
    @functools.wraps(function)
    def call(*args, **kwargs):
        recording = RECORDING
        if recording is None or recording.paused or threading.get_ident() != recording.thread:
            return function(*args, **kwargs)
        return recording.host_call(function, args, kwargs)
    call.replayed_as_python = True
    return call


def recording_here():
    """True while this thread records (a step inside the recorded one is part of it)."""
    recording = RECORDING
    return recording is not None and threading.get_ident() == recording.thread


def decided_by_inputs(array):
    """True while this thread records a step and ``array`` is (a view of) one of its
    inputs, unwritten so far: a Python decision on its values (``if``, a range check)
    can then be taken again before every replay, by :func:`decide`."""
    recording = _active()
    if recording is None or not isinstance(array, np.ndarray):
        return False
    owner = id(_owner(array))
    return owner in recording.inputs and owner not in recording.overwritten


def decide(function, *args):
    """``function(*args)``: a Python value (a bool, a number, None) computed from
    arrays that :func:`decided_by_inputs`. While a step is recorded it is a
    precondition of the replay: every later call first computes it again on its
    own inputs, and records the step again (eager, so with eager's errors) when
    the value differs or ``function`` raises. The step may thus branch on it, as
    eager code does: cross-entropy takes its plain path when no label is
    ``ignore_index``."""
    recording = _active()
    if recording is None:
        return function(*args)
    return recording.decide(function, args)


def refuse(what, fix):
    """Raise the capture's sentence for ``what`` (a random draw, ...) while recording."""
    recording = RECORDING
    if recording is not None and not recording.paused \
            and threading.get_ident() == recording.thread:
        raise CaptureError(f"tg.jit cannot capture {what}: {fix}")


# -- helpers --------------------------------------------------------------------------------

def _active():
    recording = RECORDING
    if recording is None or recording.paused or threading.get_ident() != recording.thread:
        return None
    return recording


# Functions whose result depends on the shape and dtype of their operands only: a
# constant of the step, made once while recording.
_SHAPE_ONLY = {np.zeros_like, np.ones_like, np.empty_like, np.full_like}


# Functions that write into their first argument.
_IN_PLACE = {np.copyto, np.put, np.place, np.putmask, np.fill_diagonal, np.put_along_axis}


def _call(function, args, kwargs):
    """``function`` on plain arrays, recorded when a capture runs."""
    plain_args, plain_kwargs = _plain(args), _plain(kwargs)
    recording = _active()
    if recording is not None and function in _IN_PLACE:
        recording.before_write(plain_args[:1])
        function(*plain_args, **plain_kwargs)
        return recording.record(function, plain_args, plain_kwargs, None,
                                writes=plain_args[:1])
    result = function(*plain_args, **plain_kwargs)
    if recording is None:
        return result
    if function in _SHAPE_ONLY:  # a constant; Traced, so that what is done to it is recorded
        return result.view(Traced)
    return recording.record(function, plain_args, plain_kwargs, result)


def _plain(value):
    """``value`` with every Traced array (in tuples, lists, dicts) seen as a plain one."""
    kind = type(value)
    if kind is Traced:
        return value.view(np.ndarray)
    if kind is tuple or kind is list:
        return kind(_plain(v) for v in value)
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    return value


def _owner(array):
    base = array.base
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return array if not isinstance(base, np.ndarray) else base


def _arrays_in(value):
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _arrays_in(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _arrays_in(v)


def _shares_with(result, args, kwargs):
    """True when ``result`` is a view of one of the operands."""
    if result.base is None:
        return False
    owner = _owner(result)
    return any(_owner(a) is owner for a in _arrays_in((args, kwargs)))


# Functions whose result can be written into ``out=`` directly (the ufuncs and these).
_TAKES_OUT = {np.dot, np.sum, np.mean, np.prod, np.max, np.min, np.amax, np.amin, np.concatenate,
              np.take, np.clip, np.cumsum, np.cumprod, np.argmax, np.argmin, np.einsum,
              np.matmul, np.round, np.stack, np.any, np.all}


def _into(function, args, kwargs, result):
    """The call that recomputes ``result`` into its own memory at a replay."""
    if function is np.copy or function is np.astype:  # a copy: copy into the buffer
        return Call(np.copyto, (result, args[0]), {"casting": "unsafe"}, writes=(result,))
    if isinstance(function, np.ufunc) or isinstance(getattr(function, "__self__", None), np.ufunc) \
            or function in _TAKES_OUT:
        return Call(function, args, dict(kwargs, out=result), writes=(result,))
    return Call(_store, (result, function, args, kwargs), {}, writes=(result,))


def _store(result, function, args, kwargs):
    """Compute ``function(*args, **kwargs)`` and copy it into ``result`` (for the
    functions that take no ``out=``)."""
    np.copyto(result, function(*args, **kwargs), casting="unsafe")


def _mentions(parameters, tensor):
    """True when ``parameters`` (one Tensor or a list of them) holds ``tensor``."""
    if parameters is tensor:
        return True
    return isinstance(parameters, (list, tuple)) and any(p is tensor for p in parameters)


def _is_function(value):
    return callable(value) and (hasattr(value, "__code__") or hasattr(value, "__func__")
                                or isinstance(value, functools.partial))


def _is_iterator(value):
    return hasattr(value, "__next__") and iter(value) is value


def _name(function):
    return getattr(function, "__qualname__", None) or getattr(function, "__name__", repr(function))


def _describe(value, numbering):
    """``value`` as data two traces can compare: arrays by buffer and view, or by
    content when the capture did not make them (constants)."""
    if isinstance(value, np.ndarray):
        owner = _owner(value)
        key = numbering.get(id(owner))
        view = (value.shape, value.strides, value.dtype.str,
                value.__array_interface__["data"][0] - owner.__array_interface__["data"][0])
        if key is None:
            return ("constant", view, value.tobytes())
        return (key, view)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_describe(v, numbering) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _describe(v, numbering)) for k, v in sorted(value.items())))
    if isinstance(value, (float, np.floating)):
        return ("number", float(value).hex())  # exact, and NaN equals NaN here
    if isinstance(value, (bool, int, str, type(None), slice, np.dtype, type(Ellipsis),
                          np.integer, np.bool_)):
        return ("value", repr(value))
    if hasattr(value, "_node") and not (value.requires_grad and value._node is None):
        return ("made tensor", _describe(value.data, numbering))  # not a parameter
    if callable(value) and hasattr(value, "__qualname__"):
        return ("function", _name(value))
    return ("object", id(value))
