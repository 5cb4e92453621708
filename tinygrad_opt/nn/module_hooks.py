"""Module hooks, as in PyTorch: a forward pre-hook sees (and may replace) a
module's inputs, a forward hook its output, a full backward hook the gradients
with respect to its inputs and outputs (and may replace the former).

A full backward hook works by routing the module's tensor inputs and outputs
through identity ops (:class:`_InputGrads`, :class:`_OutputGrads`) whose
backwards see the gradients: the outputs' first (they are consumed last), then
the inputs', at which point every gradient of the call is known.
"""

from ..op import Function
from ..tensor import Tensor


def run_forward_pre_hooks(module, hooks, args):
    """``args`` after every pre-hook (a non-tuple result becomes a 1-tuple)."""
    for hook in list(hooks.values()):
        result = hook(module, args)
        if result is not None:
            args = result if isinstance(result, tuple) else (result,)
    return args


def run_forward_hooks(module, hooks, args, output):
    """``output`` after every forward hook (a hook returning None keeps it)."""
    for hook in list(hooks.values()):
        result = hook(module, args, output)
        if result is not None:
            output = result
    return output


class _BackwardCall:
    """The gradients of one module call, gathered for its full backward hooks.

    ``input_needs[k]``: whether the k-th tensor input requires grad (its
    gradient will come); ``n_outputs``: how many outputs carry a gradient.
    """

    def __init__(self, module, hooks, input_needs):
        self.module, self.hooks, self.input_needs = module, hooks, input_needs
        self.n_outputs = self.waiting_outputs = self.waiting_inputs = 0
        self.grad_input = self.grad_output = None

    def output_grad(self, i, grad, n_outputs):
        if self.waiting_outputs == 0:  # the first output gradient of this backward
            self.grad_output = [None] * n_outputs
            self.grad_input = [None] * len(self.input_needs)
            self.waiting_outputs = self.n_outputs
            self.waiting_inputs = sum(self.input_needs)
        self.grad_output[i] = grad
        self.waiting_outputs -= 1
        if self.waiting_outputs == 0 and self.waiting_inputs == 0:
            self._call_hooks()  # no input needs a gradient: call now, as PyTorch does

    def input_grad(self, i, grad):
        self.grad_input[i] = grad
        self.waiting_inputs -= 1
        if self.waiting_inputs:
            return grad
        replaced = self._call_hooks()
        if replaced is None:
            return grad
        others = [k for k, g in enumerate(self.grad_input) if g is not None and k != i]
        if others:
            raise RuntimeError(
                f"full backward hook of {type(self.module).__name__}: replacing grad_input "
                "is supported for modules with one input that requires grad; this call had "
                f"{len(others) + 1}; modify the gradients with Tensor.register_hook instead.")
        return replaced[i]

    def _call_hooks(self):
        grad_input, grad_output = tuple(self.grad_input), tuple(self.grad_output)
        replaced = None
        for hook in list(self.hooks.values()):
            result = hook(self.module, grad_input if replaced is None else replaced, grad_output)
            if result is not None:
                result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
                if len(result) != len(grad_input):
                    raise RuntimeError(
                        f"full backward hook of {type(self.module).__name__} returned "
                        f"{len(result)} gradient(s) for {len(grad_input)} input(s); return "
                        "one (or None) per input, or None to keep them.")
                replaced = result
        return replaced


class _InputGrads(Function):
    """Identity on a module input; its backward reports the input's gradient."""

    @staticmethod
    def forward(ctx, x, call, i):
        ctx.call, ctx.i = call, i
        return x

    @staticmethod
    def backward(ctx, grad):
        return ctx.call.input_grad(ctx.i, grad), None, None


class _OutputGrads(Function):
    """Identity on a module output; its backward reports the output's gradient."""

    @staticmethod
    def forward(ctx, x, call, i, n_outputs):
        ctx.call, ctx.i, ctx.n_outputs = call, i, n_outputs
        return x

    @staticmethod
    def backward(ctx, grad):
        ctx.call.output_grad(ctx.i, grad, ctx.n_outputs)
        return grad, None, None, None


def call_with_backward_hooks(module, hooks, args, run):
    """``run(args)`` (the forward and forward hooks) with its tensor inputs and
    outputs routed through the identity ops that feed the full backward hooks."""
    tensors = [k for k, a in enumerate(args) if isinstance(a, Tensor)]
    call = _BackwardCall(module, hooks, [args[k].requires_grad for k in tensors])
    args = list(args)
    for i, k in enumerate(tensors):
        if args[k].requires_grad:
            args[k] = _InputGrads.apply(args[k], call, i)
    output = run(tuple(args))
    outputs = output if isinstance(output, tuple) else (output,)
    carry = [isinstance(o, Tensor) and o.requires_grad for o in outputs]
    call.n_outputs = sum(carry)
    wrapped = tuple(_OutputGrads.apply(o, call, i, len(outputs)) if c else o
                    for i, (o, c) in enumerate(zip(outputs, carry)))
    return wrapped if isinstance(output, tuple) else wrapped[0]
