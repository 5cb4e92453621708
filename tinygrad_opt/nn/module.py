"""``Module`` and ``Parameter``: the containers of learnable state, as in PyTorch.

A :class:`Parameter` is a Tensor that a Module registers as learnable: assigning one
to a module attribute (``self.weight = Parameter(...)``) puts it in the module's
``_parameters``; assigning a Module puts it in ``_modules``. Everything else about a
model -- its parameters with dotted names (``layers.0.weight``), train/eval mode,
``state_dict``/``load_state_dict``, moving to a device or dtype -- walks those two
tables, in registration order, exactly as ``torch.nn.Module`` does.
"""

from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend, capture
from ..autograd.zero_grads import zero_grads
from ..grad_mode import is_grad_enabled
from ..hooks import add_hook
from ..tensor import Tensor, ToShortcuts
from . import module_hooks


class Parameter(Tensor):
    """A Tensor that is a module's learnable parameter (``requires_grad=True`` by default).

    ``Parameter(data)`` shares ``data``'s array (no copy), as ``torch.nn.Parameter``
    does. Results of ops on a Parameter are plain Tensors.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.empty((0,), dtype=backend.get_default_dtype())
        elif isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        copy = Parameter(self.data.copy(), requires_grad=self.requires_grad)
        if self.grad is not None:
            copy.grad = Tensor.constant(self.grad.data.copy())
        memo[id(self)] = copy
        return copy


# The hook tables of a module (PyTorch's attribute names), in calling order.
_HOOK_TABLES = ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks")


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict(strict=False)`` skipped (PyTorch's return value)."""

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def _add_indent(text, spaces):
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    pad = " " * spaces
    return lines[0] + "\n" + "\n".join(pad + line for line in lines[1:])


def _shape(array):
    return tuple(int(n) for n in array.shape)


class Module(ToShortcuts):
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, assign Parameters and submodules
    as attributes, and define ``forward``; calling the module calls ``forward``::

        class TwoLayer(nn.Module):
            def __init__(self):
                super().__init__()
                self.hidden = nn.Linear(2, 16)
                self.out = nn.Linear(16, 1)

            def forward(self, x):
                return self.out(self.hidden(x).relu())

    Attributes:
        training (bool): True in training mode (Dropout active), False after ``eval()``.
    """

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        for table in _HOOK_TABLES:
            object.__setattr__(self, table, OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required '
                                  '"forward" function; define forward(self, ...) in the subclass.')

    # True once a hook was registered on this module (then the tables decide).
    _has_hooks = False

    def __call__(self, *args, **kwargs):
        if not self._has_hooks:  # the common case: one attribute lookup
            return self.forward(*args, **kwargs)
        pre, post, backward = (self.__dict__.get(table) for table in _HOOK_TABLES)
        if pre or post or backward:
            capture.refuse(f"the hooks of a {type(self).__name__} (register_forward_hook, ...)",
                           "a replay would not run them again; remove the hooks or run the "
                           "step without tg.jit.")
        if pre:
            args = module_hooks.run_forward_pre_hooks(self, pre, args)

        def run(args):
            output = self.forward(*args, **kwargs)
            return module_hooks.run_forward_hooks(self, post, args, output) if post else output

        if backward and is_grad_enabled():
            return module_hooks.call_with_backward_hooks(self, backward, args, run)
        return run(args)

    # -- hooks (PyTorch's; each register_* returns a handle with .remove()) -------------------

    def _register(self, table, hook, prepend):
        hooks = self.__dict__.get(table)
        if hooks is None:  # a module made without Module.__init__ (e.g. copied)
            hooks = OrderedDict()
            object.__setattr__(self, table, hooks)
        handle = add_hook(hooks, hook)
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        object.__setattr__(self, "_has_hooks", True)
        return handle

    def register_forward_pre_hook(self, hook, *, prepend=False):
        """``hook(module, args)`` before each forward; a returned value replaces
        the positional arguments (a non-tuple becomes a 1-tuple)."""
        return self._register("_forward_pre_hooks", hook, prepend)

    def register_forward_hook(self, hook, *, prepend=False):
        """``hook(module, args, output)`` after each forward; a returned value
        replaces the output."""
        return self._register("_forward_hooks", hook, prepend)

    def register_full_backward_hook(self, hook, prepend=False):
        """``hook(module, grad_input, grad_output)`` once the gradients with
        respect to the module's tensor inputs (None where not needed) and
        outputs are known; a returned tuple replaces ``grad_input``."""
        return self._register("_backward_hooks", hook, prepend)

    # -- registration -------------------------------------------------------------------------

    def _tables(self, what):
        tables = self.__dict__.get("_parameters")
        if tables is None:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call; call "
                                 f"super().__init__() first in {type(self).__name__}.__init__.")
        return self.__dict__["_parameters"], self.__dict__["_buffers"], self.__dict__["_modules"]

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            params, buffers, modules = self._tables("parameters")
            self.__dict__.pop(name, None)
            buffers.pop(name, None)
            modules.pop(name, None)
            params[name] = value
            return
        if isinstance(value, Module):
            params, buffers, modules = self._tables("child modules")
            self.__dict__.pop(name, None)
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
            return
        d = self.__dict__
        if "_parameters" in d and name in d["_parameters"]:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} of "
                                f"{type(self).__name__} (nn.Parameter or None expected); wrap "
                                "it: nn.Parameter(tensor).")
            d["_parameters"][name] = None
            return
        if "_modules" in d and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} "
                                f"of {type(self).__name__} (nn.Module or None expected).")
            d["_modules"][name] = None
            return
        if "_buffers" in d and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} of "
                                f"{type(self).__name__} (Tensor or None expected).")
            d["_buffers"][name] = value
            return
        object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails: parameters, buffers and submodules.
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            entries = d.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                del entries[name]
                self.__dict__.get("_non_persistent_buffers", set()).discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        keys = set(super().__dir__())
        for table in ("_parameters", "_buffers", "_modules"):
            keys.update(self.__dict__.get(table, ()))
        return sorted(keys)

    def _check_name(self, kind, name, table):
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}.")
        if name == "" or "." in name:
            raise KeyError(f"{kind} name {name!r} must be a non-empty string without '.'.")
        if hasattr(self, name) and name not in self.__dict__[table]:
            raise KeyError(f"attribute {name!r} already exists on {type(self).__name__}; pick "
                           f"another {kind} name.")

    def register_parameter(self, name, param):
        """Add a Parameter (or None) under ``name``."""
        self._tables("parameters")
        self._check_name("parameter", name, "_parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter {name!r} "
                            "(nn.Parameter or None expected); wrap it: nn.Parameter(tensor).")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a Tensor that is state but not learnable (in ``state_dict`` when persistent)."""
        self._tables("buffers")
        self._check_name("buffer", name, "_buffers")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign {type(tensor).__name__} as buffer {name!r} (Tensor "
                            "or None expected).")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        """Add a child module (or None) under ``name``."""
        self._tables("child modules")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass.")
        if not isinstance(name, str):
            raise TypeError(f"module name should be a string, got {type(name).__name__}.")
        if name == "" or "." in name:
            raise KeyError(f"module name {name!r} must be a non-empty string without '.'.")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute {name!r} already exists on {type(self).__name__}; pick "
                           "another module name.")
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target):
        """The submodule at a dotted path (``"layers.0"``); ``""`` is the module itself."""
        module = self
        if target == "":
            return module
        for item in target.split("."):
            child = module._modules.get(item) if isinstance(module, Module) else None
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule {item!r} (while "
                                     f"resolving {target!r}).")
            module = child
        return module

    def get_parameter(self, target):
        """The parameter at a dotted path (``"layers.0.weight"``)."""
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        if name not in module._parameters:
            raise AttributeError(f"{type(module).__name__} has no parameter {name!r} (while "
                                 f"resolving {target!r}).")
        return module._parameters[name]

    # -- traversal ----------------------------------------------------------------------------

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) for self and every descendant, depth first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            yield from module.named_modules(memo, prefix + ("." if prefix else "") + name,
                                            remove_duplicate)

    def modules(self):
        """Self and every descendant module (each once)."""
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        """(name, module) for the direct children (each once)."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, table, prefix, recurse, remove_duplicate):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) \
            if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, table).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Parameter) pairs: ``('layers.0.weight', ...)``; shared ones once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        """Every Parameter of self and its descendants, in registration order, each once."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def apply(self, fn):
        """Call ``fn(module)`` on every child (recursively), then on self; returns self.
        The usual way to re-initialise: ``model.apply(init_fn)``."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -- modes and gradients ------------------------------------------------------------------

    def train(self, mode=True):
        """Set training mode (``mode=True``) or evaluation mode on self and all descendants."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode is expected to be a bool, got {mode!r}.")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        """Evaluation mode: the same as ``train(False)`` (Dropout becomes the identity)."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Switch gradient recording on or off for every parameter (freezing)."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Forget every parameter's gradient: ``grad = None`` by default, or a fresh
        zero array with ``set_to_none=False`` (never written in place: a gradient
        array may be shared)."""
        zero_grads(self.parameters(), set_to_none)

    # -- state ------------------------------------------------------------------------------

    def _state_items(self, prefix=""):
        """(dotted name, tensor) for everything that state_dict holds, in PyTorch's order:
        each module's own parameters, then its persistent buffers, then its children."""
        for module_prefix, module in self.named_modules(prefix=prefix, remove_duplicate=False):
            dot = module_prefix + ("." if module_prefix else "")
            for name, param in module._parameters.items():
                if param is not None:
                    yield dot + name, param
            for name, buffer in module._buffers.items():
                if buffer is not None and name not in module._non_persistent_buffers:
                    yield dot + name, buffer

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """An OrderedDict from dotted names to tensors: every parameter and persistent
        buffer. The tensors are detached and share memory with the model (copy them, or
        ``tg.save`` them, to keep a snapshot); ``keep_vars=True`` gives the Parameters."""
        if destination is None:
            destination = OrderedDict()
        for name, tensor in self._state_items(prefix):
            destination[name] = tensor if keep_vars else tensor.detach()
        return destination

    def load_state_dict(self, state_dict, strict=True):
        """Copy a state dict's values into the parameters and buffers, in place.

        Each value is cast to the parameter's dtype and moved to its device; Parameter
        identity is kept (an optimizer built on the model keeps working). With
        ``strict=True`` (the default) missing and unexpected keys are an error; a
        shape mismatch always is. Nothing is copied unless everything fits. Returns
        ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(f"load_state_dict expects a dict of name -> tensor (from "
                            f"state_dict() or tg.load), got {type(state_dict).__name__}.")
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched, pairs = [], []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = value.data if isinstance(value, Tensor) else value
            if not hasattr(array, "shape") or isinstance(array, (np.generic,)):
                array = np.asarray(array)
            if _shape(array) != _shape(target.data):
                mismatched.append(f"{key} (checkpoint {_shape(array)}, model "
                                  f"{_shape(target.data)})")
                continue
            pairs.append((target, array))
        problems = []
        if strict and missing:
            problems.append("missing key(s) " + ", ".join(repr(k) for k in missing))
        if strict and unexpected:
            problems.append("unexpected key(s) " + ", ".join(repr(k) for k in unexpected))
        if mismatched:
            problems.append("size mismatch for " + ", ".join(mismatched))
        if problems:
            advice = ("check that the checkpoint comes from the same architecture"
                      + (", or pass strict=False to skip missing and unexpected keys"
                         if strict and (missing or unexpected) else ""))
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}: "
                               f"{'; '.join(problems)}; {advice}.")
        for target, array in pairs:
            if backend.device_of(array) != target.device:
                array = backend.transfer(array, target.device)
            if array is not target.data:
                target.data[...] = array
        return _IncompatibleKeys(missing, unexpected)

    # -- devices and dtypes -------------------------------------------------------------------

    def _convert(self, fn):
        """Replace every parameter's and buffer's array by ``fn(array)`` (and its grad's),
        keeping the Parameter objects themselves."""
        for module in self.modules():
            for table in (module._parameters, module._buffers):
                for tensor in table.values():
                    if tensor is None:
                        continue
                    tensor.data = fn(tensor.data)
                    if tensor.grad is not None:
                        tensor.grad = Tensor.constant(fn(tensor.grad.data))
        return self

    def to(self, device=None, dtype=None):
        """Move the parameters and buffers to ``device`` and/or cast the floating ones to
        ``dtype``, in place (``model.to("cuda")``, ``model.to("float64")``); returns self."""
        if isinstance(device, (np.dtype, type)) or (
                isinstance(device, str) and not backend.is_device(device)):
            device, dtype = None, device
        if dtype is not None:
            dtype = backend.to_dtype(dtype)
            if dtype.kind not in "fc":
                raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got "
                                f"desired dtype={dtype}.")
        if device is not None:
            device = backend.normalize_device(device)

        def convert(array):
            if dtype is not None and array.dtype.kind in "fc" and array.dtype != dtype:
                array = array.astype(dtype)
            if device is not None and backend.device_of(array) != device:
                array = backend.transfer(array, device)
            return array

        return self._convert(convert)

    def half(self):
        return self.to(dtype="float16")

    # -- description --------------------------------------------------------------------------

    def extra_repr(self):
        """The text inside the parentheses of this module's repr (override it)."""
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _add_indent(repr(module), 2)
                       for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        text = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                text += extra_lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"
