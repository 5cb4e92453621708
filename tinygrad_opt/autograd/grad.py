"""``tg.grad``: gradients of outputs with respect to chosen inputs, as a tuple."""

from ..tensor import Tensor, seed_gradient
from .engine import run_backward


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Return d(outputs)/d(inputs) without touching any ``.grad``.

    As ``torch.autograd.grad``: ``outputs`` and ``inputs`` are tensors or
    sequences of tensors; ``grad_outputs`` the vectors of the vector-Jacobian
    products (ones for scalar outputs). With ``create_graph=True`` the result
    is differentiable (Hessian-vector products, Newton). An input the outputs
    do not depend on is an error unless ``allow_unused=True`` (then None).
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad; create it with "
                               "requires_grad=True (or call .requires_grad_()).")
    roots, seeds = [], []
    for out, g in zip(outputs, grad_outputs):
        if not out.requires_grad:
            continue  # contributes nothing; unused inputs are reported below
        roots.append(out)
        seeds.append(seed_gradient("grad", out, g))
    retain = create_graph if retain_graph is None else retain_graph
    captured = run_backward(roots, seeds, retain, create_graph, capture=set(inputs)) \
        if roots else {}
    result = []
    for i, t in enumerate(inputs):
        g = captured.get(t)
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: the outputs do not depend on input {i} (shape "
                               f"{tuple(t.shape)}); pass allow_unused=True to get None for it.")
        if g is not None and g.dtype != t.dtype:
            g = g.to(dtype=t.dtype)
        result.append(g)
    return tuple(result)
