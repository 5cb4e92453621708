"""Helpers the benchmarks share. The MLP training step that gpu.py and mlp_step.py time,
built identically in tinygrad_opt and in PyTorch: layers Linear(n_k, n_{k+1}) with ReLU
between, weights from PyTorch's default init U(-1/√fan_in, 1/√fan_in) drawn once with NumPy,
softmax cross-entropy, Adam(γ=1e-3, β=(0.9, 0.999), ε=1e-8); and, for hvp.py and
second_order.py, a flat parameter vector cut back into arrays.

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


def train_step(model, opt, cross_entropy, X, y, *, zero_grad_first, host_loss):
    """One step as a closure: forward, cross-entropy, backward, optimizer step and
    zero_grad (before the forward when ``zero_grad_first``, else after the step). The same
    code drives either library (their APIs agree); it returns ``loss.item()`` when
    ``host_loss`` (a host synchronisation every step), else the loss tensor."""

    def step():
        if zero_grad_first:
            opt.zero_grad()
        loss = cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        if not zero_grad_first:
            opt.zero_grad()
        return loss.item() if host_loss else loss

    return step


def unflatten(flat, shapes):
    """The consecutive pieces of a flat parameter vector (a tinygrad_opt or PyTorch tensor),
    reshaped to ``shapes``: the inverse of concatenating the raveled arrays."""
    out, start = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(flat[start:start + n].reshape(shape))
        start += n
    return out
