"""Helpers the benchmarks share. The MLP training step that gpu.py and mlp_step.py time,
built identically in tinygrad_opt and in PyTorch: layers Linear(n_k, n_{k+1}) with ReLU
between, weights from PyTorch's default init U(-1/√fan_in, 1/√fan_in) drawn once with NumPy,
softmax cross-entropy, Adam(γ=1e-3, β=(0.9, 0.999), ε=1e-8), and that Adam written out by
hand in NumPy; and, for hvp.py and second_order.py, a flat parameter vector cut back into
arrays.

A helper module, not a benchmark: running it does nothing (``make bench`` skips it).
"""

import itertools

import numpy as np

from tinygrad_opt import nn

LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8


def init_weights(sizes, seed=0):
    """PyTorch's default Linear init, as (weight (out, in), bias (out,)) float32 pairs."""
    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1 / np.sqrt(fan_in)
        layers.append((rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32),
                       rng.uniform(-bound, bound, fan_out).astype(np.float32)))
    return layers


def ours_mlp(sizes):
    """``nn.MLP(sizes)`` holding ``init_weights(sizes)``, on the CPU."""
    model = nn.MLP(sizes)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for linear, (w, b) in zip(linears, init_weights(sizes)):
        linear.weight.data[...] = w
        linear.bias.data[...] = b
    return model


def torch_mlp(torch, sizes):
    """The same MLP as a ``torch.nn.Sequential`` holding ``init_weights(sizes)``, on the CPU."""
    layers = []
    for k, (w, b) in enumerate(init_weights(sizes)):
        linear = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.ReLU()] if k < len(sizes) - 2 else [linear]
    return torch.nn.Sequential(*layers)


def numpy_adam(params):
    """Adam written out by hand on NumPy arrays, its state allocated once: returns
    ``update(grads)``, which moves ``params`` in place (PyTorch's update, in the fewest
    array calls we know: the baseline the benchmarks divide by)."""
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = 0

    def update(grads):
        nonlocal t
        t += 1
        b1, b2 = BETAS
        step_size = LR / (1 - b1 ** t)
        root_bc2 = np.sqrt(1 - b2 ** t)
        for p, g, m_, v_ in zip(params, grads, m, v):
            m_ *= b1
            m_ += (1 - b1) * g
            v_ *= b2
            v_ += (1 - b2) * g * g
            denom = np.sqrt(v_)
            denom /= root_bc2
            denom += EPS
            p -= step_size * m_ / denom

    return update


def step_function(model, opt, cross_entropy, *, zero_grad_first):
    """One step as a function of the batch, ``step(x, y) -> loss tensor``: forward,
    cross-entropy, backward, optimizer step and zero_grad (before the forward when
    ``zero_grad_first``, else after the step). The same code drives either library (their
    APIs agree); with ``zero_grad_first`` it is the function ``tg.jit`` captures."""

    def step(x, y):
        if zero_grad_first:
            opt.zero_grad()
        loss = cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if not zero_grad_first:
            opt.zero_grad()
        return loss

    return step


def train_step(model, opt, cross_entropy, X, y, *, zero_grad_first, host_loss):
    """``step_function`` bound to the batch ``X, y`` as a closure of no arguments; it
    returns ``loss.item()`` when ``host_loss`` (a host synchronisation every step), else
    the loss tensor."""
    step = step_function(model, opt, cross_entropy, zero_grad_first=zero_grad_first)
    if host_loss:
        return lambda: step(X, y).item()
    return lambda: step(X, y)


def unflatten(flat, shapes):
    """The consecutive pieces of a flat parameter vector (a tinygrad_opt or PyTorch tensor),
    reshaped to ``shapes``: the inverse of concatenating the raveled arrays."""
    out, start = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(flat[start:start + n].reshape(shape))
        start += n
    return out
