"""``tg.jit``: capture a training step once, replay it.

    @tg.jit
    def train_step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for x, y in batches:
        loss = train_step(x, y)      # a detached copy of the loss

The first two calls with a new signature (the inputs' shapes, dtypes and
``requires_grad``, the other arguments' values, the grad mode) run eagerly while
:mod:`tinygrad_opt.capture` records their array calls. If the two recordings
agree exactly -- the same calls on the same buffers with the same constants --
every later call only copies the new inputs into the recorded input buffers and
replays the calls: the array work of the forward and the backward, with no
Tensor, no graph and no op dispatch; the optimizer's ``step``, ``zero_grad``,
schedulers and clipping run as their own Python (they read the step count and
the learning rate, which change from call to call). The replay computes the same
functions on the same memory in the same order as eager does, so its results are
the same bits.

What the replay assumes is checked before each replay: every tensor the step
read still holds the array it held when recorded (a replaced ``p.data`` makes
the step record again), a parameter whose gradient the backward set from
nothing has none yet (eager would add to it), and every module it reaches is
still in the same ``train()``/``eval()`` mode; and, once the new inputs are in
their buffers, the decisions the step took on them come out the same
(:func:`capture.decide`: cross-entropy's check of the labels, which takes its
plain path when no label is ``ignore_index``; a batch that decides otherwise
replays the recording of its own branch, up to four per signature). The
signature also holds the grad mode and the default dtype.

Refused with one sentence, never replayed wrong: reading a value into Python
inside the function (``.item()``, ``float()``, ``bool()``: an ``if`` on data), a
random draw (dropout in training mode), inputs that require grad, and a step
whose first two recordings differ (it computed with something the capture could
not see). On a GPU (CuPy) the function runs eagerly, with one warning.

Caveats, as in every tracing JIT: Python side effects of the function itself
(printing, appending to a list) happen while recording only; the tensor
returned is a copy; and a gradient the replay sets (``p.grad``) is the same
Tensor object from one call to the next, refilled in place.
"""

import functools
import threading
import warnings
import weakref
from keyword import iskeyword

import numpy as np

from . import capture
from .backend import get_default_dtype
from .grad_mode import is_grad_enabled
from .tensor import Tensor

# One recording at a time in this process: the capture's hooks are process-wide.
_RECORDING_LOCK = threading.Lock()
# Recordings of one signature that never repeat themselves: then the step runs eagerly.
_MAX_RECORDINGS = 8
# Signatures kept (each holds its buffers); a step called with more runs eagerly.
_MAX_SIGNATURES = 32
# Recorded branches kept per signature (capture.decide: labels with or without
# ignore_index), the most recently recorded first.
_MAX_BRANCHES = 4


def jit(function):
    """``function`` captured on its first calls and replayed after (see the module)."""
    return Captured(function)


class Captured:
    """A function that records itself on its first calls and replays after."""

    def __init__(self, function):
        functools.update_wrapper(self, function)
        self.function = function
        self.steps = {}        # signature -> its recorded branches, [_Step, ...]
        self.eager = False     # True once a call found arrays it cannot capture (CuPy)
        self.lock = threading.Lock()
        self.misses = 0        # calls in a row whose recorded step no longer fitted

    def __call__(self, *args, **kwargs):
        if self.eager or capture.recording_here():  # (called inside another recording:
            return self.function(*args, **kwargs)   # its calls are that recording's)
        key = _signature(args, kwargs)
        with self.lock:  # one call at a time: a replay fills buffers the next one reuses
            branches = self.steps.get(key)
            if branches is None:
                if len(self.steps) >= _MAX_SIGNATURES:
                    return self._too_many_signatures(args, kwargs)
                branches = self.steps[key] = []
            for step in branches:
                if step.confirmed and step.holds() and step.load(args, kwargs):
                    self.misses = 0
                    return step.replay()
            if any(step.confirmed for step in branches):
                self._missed()
            return self._record(branches, args, kwargs)

    def _missed(self):
        """A recorded step that no longer fits: recording again is right once in a while
        (a replaced p.data), but not at every call."""
        self.misses += 1
        if self.misses >= _MAX_RECORDINGS:
            self.eager = True
            warnings.warn(f"tg.jit: {self.__name__} was recorded again at each of its last "
                          f"{self.misses} calls (something it read changed every time: a "
                          "replaced p.data, p.grad set by hand instead of zero_grad(), a "
                          "module switched between train() and eval()); it runs eagerly from "
                          "now on.", stacklevel=4)

    @property
    def replaying(self):
        """True when the next call with the last signature would replay (for tests and
        for the curious: ``train_step.replaying``)."""
        return any(step.confirmed for branches in self.steps.values() for step in branches)

    def _record(self, branches, args, kwargs):
        """Run the function eagerly while recording it; keep the recording as the branch
        of its decisions, confirmed when it equals that branch's previous recording."""
        inputs = _tensors(args, kwargs)
        for t in inputs:
            if type(t.data) is not np.ndarray:
                return self._run_eagerly(t, args, kwargs)
            if t.requires_grad:
                raise capture.CaptureError(
                    f"tg.jit: input of shape {tuple(t.shape)} requires grad; a captured step "
                    "takes its data as inputs and its parameters from the model. Pass "
                    "x.detach(), or keep the tensor that requires grad inside the model.")
        buffers = branches[0].buffers if branches else [t.data.copy() for t in inputs]
        recording = capture.Recording()
        recording.live.update(id(b) for b in buffers)
        recording.inputs.update(id(b) for b in buffers)
        originals = [t.data for t in inputs]
        with _RECORDING_LOCK:
            for t, buffer in zip(inputs, buffers):
                np.copyto(buffer, t.data)
                t.data = buffer.view(capture.Traced)
            capture.RECORDING = recording
            try:
                # Tensors the function reaches on its own (a model, an optimizer, a weight
                # in its closure), seen from the start: reading `w.data` before any op
                # used `w` must be recorded too.
                tensors, modules = _in_reach(self.function)
                recording.watch(tensors)
                result = self.function(*args, **kwargs)
                outputs = _output_arrays(result)  # (before the inputs get their arrays back)
            finally:
                capture.RECORDING = None
                recording.finish()
                for t, data in zip(inputs, originals):
                    t.data = data
        step = _Step(recording, buffers, outputs, modules)
        previous = next((b for b in branches if b.decisions == step.decisions), None)
        if previous is not None:
            branches.remove(previous)
            self._confirm(step, previous)
        branches.insert(0, step)
        del branches[_MAX_BRANCHES:]
        return step.output()

    def _confirm(self, step, previous):
        """Replay from now on if this recording equals the previous one, or the last one
        confirmed (the state went back to what it was: a zero_grad forgotten once).
        The first two recordings must agree: when they do not, the function computes
        with something the capture does not see, and the user is told."""
        known = previous.layout if previous.confirmed else previous.known
        if step.layout == previous.layout or step.layout == known:
            step.confirmed = True
            return
        if known is None:  # the first two recordings
            raise capture.CaptureError(
                f"tg.jit: {self.__name__} did different array work on its first two calls "
                f"with the same signature ({_first_difference(previous.layout, step.layout)}); "
                "it computes with a value the capture cannot see (a Python number that "
                "changes, data read outside tensor operations, or gradients left from an "
                "earlier call: call opt.zero_grad() inside the function).")
        step.known, step.records = known, previous.records + 1
        if step.records >= _MAX_RECORDINGS:
            self.eager = True
            warnings.warn(f"tg.jit: {self.__name__} was recorded {step.records} times without "
                          "two equal recordings in a row (what it reads changes from call to "
                          "call); it runs eagerly from now on.", stacklevel=4)

    def _too_many_signatures(self, args, kwargs):
        self.eager = True
        warnings.warn(f"tg.jit: {self.__name__} was called with {len(self.steps)} different "
                      "signatures (input shapes, or other arguments that change from call to "
                      "call: pass values that change as tensors); it runs eagerly from now on.",
                      stacklevel=4)
        self.steps.clear()
        return self.function(*args, **kwargs)

    def _run_eagerly(self, t, args, kwargs):
        self.eager = True
        warnings.warn(f"tg.jit captures NumPy (CPU) steps; {self.__name__} works on "
                      f"{type(t.data).__module__} arrays, so it runs eagerly.", stacklevel=3)
        return self.function(*args, **kwargs)


class _Step:
    """One signature's recorded step: the replay program, the input buffers, the
    guards, and where the outputs are."""

    def __init__(self, recording, buffers, outputs, modules):
        self.buffers = buffers
        self.replay_calls = _compiled(recording.program())
        self.preconditions = recording.preconditions
        self.decisions = [value for _function, _args, value in self.preconditions]
        self.layout = recording.layout(buffers)
        self.confirmed = False
        self.records = 1      # recordings in a row, this one included, none confirmed
        self.known = None     # the layout confirmed last for this signature
        # tensors the step read: (weak reference, the array it held)
        self.read = [(weakref.ref(t), data) for t, data, _view in recording.watched.values()]
        self.no_grad_yet = [weakref.ref(leaf) for leaf in recording.expect_no_grad]
        # train() or eval() of every module it reaches: Dropout draws only in training
        self.modes = [(weakref.ref(m), m.training) for m in modules]
        self.outputs = outputs

    def holds(self):
        """True while everything the recording assumed still holds."""
        for ref, data in self.read:
            t = ref()
            if t is not None and t.data is not data:
                return False
        for ref in self.no_grad_yet:
            leaf = ref()
            if leaf is not None and leaf.grad is not None:
                return False
        for ref, training in self.modes:
            module = ref()
            if module is not None and module.training != training:
                return False
        return True

    def load(self, args, kwargs):
        """Copy the call's inputs into the input buffers; True when the decisions the
        recording took on its inputs (:func:`capture.decide`) come out the same."""
        for buffer, t in zip(self.buffers, _tensors(args, kwargs)):
            np.copyto(buffer, t.data)
        for function, call_args, value in self.preconditions:
            try:
                if function(*call_args) != value:
                    return False
            except Exception:  # noqa: BLE001  (bad labels: the eager recording raises them)
                return False
        return True

    def replay(self):
        self.replay_calls()
        return self.output()

    def output(self):
        """What the function returned, with every tensor a detached copy."""
        return _rebuild(self.outputs)


def _compiled(program):
    """The program as one Python function with a line per call, each operand a name
    bound to its object: ``f3(v7, v8, out=v9)``. Calling it saves the loop and the
    unpacking of a ``for function, args, kwargs in program`` (about 0.15 µs a call,
    8% of a small step)."""
    names, lines = {}, []

    def name(value):
        if id(value) not in names:
            names[id(value)] = (f"v{len(names)}", value)
        return names[id(value)][0]

    def keyword(key, value):  # (a key that is no Python name goes through **)
        plain = key.isidentifier() and not iskeyword(key)
        return f"{key}={name(value)}" if plain else f"**{{{key!r}: {name(value)}}}"

    for function, args, kwargs in program:
        operands = [name(a) for a in args] + [keyword(k, v) for k, v in kwargs.items()]
        lines.append(f"    {name(function)}({', '.join(operands)})")
    namespace = dict(names.values())
    source = "def replay():\n" + "\n".join(lines or ["    pass"]) + "\n"
    exec(source, namespace)  # noqa: S102  (our own lines, of names bound just above)
    return namespace["replay"]


def _signature(args, kwargs):
    """What decides whether a recorded step fits a call (computed at every call: kept
    to tuples of the values themselves, no strings)."""
    key = [is_grad_enabled(), get_default_dtype()]
    key += [_describe(a) for a in args]
    if kwargs:
        key += sorted((k, _describe(v)) for k, v in kwargs.items())
    return tuple(key)


def _describe(value):
    if isinstance(value, Tensor):
        data = value.data
        return (data.shape, data.dtype, type(data), value.requires_grad)
    if isinstance(value, np.ndarray):
        raise capture.CaptureError(
            f"tg.jit: an argument is a NumPy array of shape {value.shape}; a captured step "
            "takes its data as tensors (tg.tensor(array)), which it copies into the buffers "
            "it replays from.")
    try:
        hash(value)
    except TypeError:
        return ("object", id(value))
    return ("value", type(value).__name__, value)


def _in_reach(function, depth=4):
    """The Tensors in ``function``'s closure, defaults and the globals it names, and in
    the modules, optimizers, schedulers, bound methods and containers found there; and
    the modules (with their submodules)."""
    found, modules, seen = [], [], set()

    def visit(obj, depth):
        if depth < 0 or id(obj) in seen or isinstance(obj, (str, bytes, int, float, type)):
            return
        seen.add(id(obj))
        if isinstance(obj, Tensor):
            found.append(obj)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for item in obj:
                visit(item, depth - 1)
        elif isinstance(obj, dict):
            for item in obj.values():
                visit(item, depth - 1)
        elif hasattr(obj, "param_groups"):  # an optimizer
            for group in obj.param_groups:
                visit(group["params"], depth - 1)
        elif hasattr(obj, "parameters") and hasattr(obj, "named_buffers"):  # a module
            modules.extend(m for m in obj.modules() if id(m) not in seen)
            seen.update(id(m) for m in obj.modules())
            visit(list(obj.parameters()), depth - 1)
            visit([b for _name, b in obj.named_buffers()], depth - 1)
        elif hasattr(obj, "optimizer") and hasattr(obj, "get_last_lr"):  # a scheduler
            visit(obj.optimizer, depth - 1)
        elif hasattr(obj, "__code__"):  # a function: what it closes over and names
            code = obj.__code__
            for cell in obj.__closure__ or ():
                try:
                    visit(cell.cell_contents, depth - 1)
                except ValueError:  # an empty cell
                    pass
            visit(obj.__defaults__ or (), depth - 1)
            names = obj.__globals__
            visit([names[n] for n in _names(code) if n in names], depth - 1)
        elif hasattr(obj, "__func__"):  # a bound method
            visit(obj.__self__, depth - 1)
            visit(obj.__func__, depth - 1)
        elif isinstance(obj, functools.partial):
            visit((obj.func, obj.args, obj.keywords), depth - 1)

    visit(function, depth)
    return found, modules


def _names(code):
    """The global names a code object and the functions defined in it use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names(const)
    return names


def _tensors(args, kwargs):
    return [v for v in (*args, *kwargs.values()) if isinstance(v, Tensor)]


def _output_arrays(result):
    """``result`` with each Tensor replaced by its array (the buffer a replay refills)."""
    if isinstance(result, Tensor):
        data = result.data
        return ("tensor", data.view(np.ndarray) if isinstance(data, np.ndarray) else data)
    if isinstance(result, (tuple, list)):
        return (type(result), [_output_arrays(r) for r in result])
    if result is None or isinstance(result, (int, float, str, bool)):
        return ("value", result)
    raise capture.CaptureError(
        f"tg.jit: the function returned a {type(result).__name__}; a captured step returns "
        "tensors, numbers, None, or tuples and lists of them.")


def _rebuild(outputs):
    kind, content = outputs
    if kind == "tensor":
        return Tensor.constant(content.copy())
    if kind == "value":
        return content
    return kind(_rebuild(o) for o in content)


def _first_difference(before, after):
    """A few words on the first call where two layouts differ, or None."""
    if len(before) != len(after):
        return f"{len(before)} calls, then {len(after)}"
    for k, (one, two) in enumerate(zip(before, after)):
        if one != two:
            return f"call {k + 1} of {len(before)}, {one[0]}"
    return None
