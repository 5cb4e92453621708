"""Grad mode: whether ops record the graph, kept per thread as in PyTorch.

A ``with tg.no_grad():`` block in one thread must not switch recording off in
another (a Dask worker runs several trials on threads). Each thread's mode is a
small mutable :class:`ThreadMode`, found through a context variable: a thread
starts with none of its own and reads the shared, never-written
``DEFAULT_MODE`` (grad on) until it first changes its mode. Reading it
(``thread_mode(DEFAULT_MODE).order``, once per op in ``Op.apply``) is a C call
and an attribute -- several times cheaper than a ``threading.local`` -- and
changing it is an attribute write, not a new context.

``order`` is None while grad mode is off, otherwise the order given to the
nodes recorded now (0 in the forward pass, k inside the k-th nested
``create_graph=True`` backward, for the pictures of ``tinygrad_opt.draw``).

``no_grad``, ``enable_grad``, ``inference_mode`` and ``set_grad_enabled`` work
as context managers and as decorators (with or without parentheses, on plain
and on generator functions), as in PyTorch.
"""

import contextvars
import functools
import inspect


class ThreadMode:
    """One thread's grad mode: ``order`` (None: off) and the create_graph depth."""

    __slots__ = ("depth", "order")

    def __init__(self):
        self.depth = 0
        self.order = 0


DEFAULT_MODE = ThreadMode()  # read by threads that never changed their mode; never written
_mode = contextvars.ContextVar("tinygrad_opt.grad_mode")
thread_mode = _mode.get  # thread_mode(DEFAULT_MODE): this thread's mode, for reading


def own_mode():
    """This thread's mode, for changing it (made on the first change)."""
    mode = _mode.get(DEFAULT_MODE)
    if mode is DEFAULT_MODE:
        mode = ThreadMode()
        _mode.set(mode)
    return mode


def is_grad_enabled():
    """True when ops record the graph (in this thread)."""
    return thread_mode(DEFAULT_MODE).order is not None


def _set_grad_mode(mode):
    """Turn graph recording on or off in this thread; returns the previous mode."""
    state = own_mode()
    previous = state.order is not None
    state.order = state.depth if mode else None
    return previous


def _set_depth(depth):
    state = own_mode()
    state.depth = depth
    if state.order is not None:
        state.order = depth


def _wrap_generator(fn, make_mode):
    """A generator function whose body runs under the mode at every resumption
    (and not while the caller holds the yielded value), as PyTorch's decorators."""

    @functools.wraps(fn)
    def generator(*args, **kwargs):
        gen = fn(*args, **kwargs)
        try:
            with make_mode():
                response = gen.send(None)
            while True:
                try:
                    request = yield response
                except GeneratorExit:
                    with make_mode():
                        gen.close()
                    raise
                except BaseException as error:  # noqa: BLE001  (thrown on into the body)
                    with make_mode():
                        response = gen.throw(error)
                else:
                    with make_mode():
                        response = gen.send(request)
        except StopIteration as stop:
            return stop.value

    return generator


class _GradMode:
    """Context manager and decorator that sets grad mode inside its block.

    ``@no_grad`` and ``@no_grad()`` both decorate: a function passed to the
    constructor is decorated at once.
    """

    mode = True

    def __new__(cls, func=None):
        self = super().__new__(cls)
        return self if func is None else self(func)

    def __enter__(self):
        # (inlined _set_grad_mode: every optimizer step enters a no_grad block)
        state = _mode.get(DEFAULT_MODE)
        if state is DEFAULT_MODE:
            state = own_mode()
        self._previous = state.order is not None
        state.order = state.depth if self.mode else None

    def __exit__(self, *exc):
        _set_grad_mode(self._previous)

    def _fresh(self):
        """A new manager with the same setting (each call of a decorated function
        gets its own, so recursion and threads keep their own previous mode)."""
        return type(self)()

    def __call__(self, fn):
        if not callable(fn):
            raise TypeError(f"{type(self).__name__}: decorates a function, got "
                            f"{type(fn).__name__}; use it as `@{type(self).__name__}` or "
                            f"`with {type(self).__name__}():`.")
        if inspect.isgeneratorfunction(fn):
            return _wrap_generator(fn, self._fresh)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Inside ``with tg.no_grad():`` ops record no graph (inference, updates)."""

    mode = False


class enable_grad(_GradMode):
    """Inside ``with tg.enable_grad():`` ops record the graph again."""

    mode = True


class inference_mode(_GradMode):
    """``inference_mode()`` is ``no_grad()`` here (no separate inference tensors);
    ``inference_mode(False)`` leaves grad mode as it is, as in PyTorch."""

    def __new__(cls, mode=True):
        if isinstance(mode, bool):
            self = object.__new__(cls)
            self.enabled = mode
            return self
        self = object.__new__(cls)  # @inference_mode without parentheses
        self.enabled = True
        return self(mode)

    def __init__(self, mode=True):
        pass

    def __enter__(self):
        self._previous = _set_grad_mode(False if self.enabled else is_grad_enabled())

    def _fresh(self):
        return inference_mode(self.enabled)


class set_grad_enabled(_GradMode):
    """``tg.set_grad_enabled(False)`` switches recording off (in this thread) at once;
    used as ``with tg.set_grad_enabled(mode):`` (or a decorator) it also restores
    the previous mode at the end, as in PyTorch."""

    def __new__(cls, mode):
        return object.__new__(cls)

    def __init__(self, mode):
        self.mode = bool(mode)
        self._previous = _set_grad_mode(self.mode)

    def __enter__(self):
        pass  # the constructor already set the mode

    def __call__(self, fn):
        _set_grad_mode(self._previous)  # decorating is not entering the mode
        return super().__call__(fn)

    def _fresh(self):
        return type(self)(self.mode)

    def __repr__(self):
        return f"set_grad_enabled(mode={self.mode})"


class backward_depth:
    """Marks the nodes built while a create_graph backward runs (for draw.py).

    Their order is one more than the highest order in the graph being
    differentiated (``top``), so the second backward of a Hessian-vector
    product -- which runs after the first, not inside it -- still gets order 2.
    """

    def __init__(self, top=0):
        self.top = top

    def __enter__(self):
        self._previous = thread_mode(DEFAULT_MODE).depth
        _set_depth(max(self._previous + 1, self.top + 1))

    def __exit__(self, *exc):
        _set_depth(self._previous)
