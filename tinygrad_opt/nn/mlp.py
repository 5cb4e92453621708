"""``MLP``: a multilayer perceptron from a list of layer sizes."""

import copy

from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .container import Sequential
from .dropout import Dropout
from .linear import Identity, Linear
from .module import Module

ACTIVATIONS = {
    "relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "leaky_relu": LeakyReLU,
    "identity": Identity, "linear": Identity,
    "softmax": lambda: Softmax(dim=-1), "log_softmax": lambda: LogSoftmax(dim=-1),
}


def _activation(spec, role):
    """A fresh activation module from a name, a Module class, a factory or a module."""
    if spec is None:
        return None
    if isinstance(spec, str):
        factory = ACTIVATIONS.get(spec.lower())
        if factory is None:
            raise ValueError(f"MLP: unknown {role} {spec!r}; use one of "
                             f"{', '.join(sorted(ACTIVATIONS))}, a Module class or None.")
        return factory()
    if isinstance(spec, Module):
        return copy.deepcopy(spec)
    if callable(spec):
        module = spec()
        if not isinstance(module, Module):
            raise TypeError(f"MLP: the {role} factory must return an nn.Module, got "
                            f"{type(module).__name__}.")
        return module
    raise TypeError(f"MLP: {role} must be a name, a Module class or instance, or None; got "
                    f"{type(spec).__name__}.")


class MLP(Module):
    """Linear layers of the given sizes with an activation between them.

    ``MLP([2, 16, 16, 3])`` is ``Linear(2, 16), ReLU(), Linear(16, 16), ReLU(),
    Linear(16, 3)`` in ``self.layers`` (a Sequential), so the parameters are named
    ``layers.0.weight``, ``layers.0.bias``, ``layers.2.weight``, ... as PyTorch would.

    Args:
        sizes: [in_features, hidden_1, ..., out_features] (at least two numbers).
        activation: between the layers: "relu" (default), "tanh", "sigmoid",
            "leaky_relu", "identity", a Module class, a factory, a module (copied), or
            None for none.
        output_activation: after the last layer (default None: raw outputs, which is
            what cross_entropy and binary_cross_entropy_with_logits want).
        bias: give every Linear a bias.
        dropout: if > 0, a Dropout(dropout) after every hidden activation.
        device, dtype: of the parameters.
    """

    def __init__(self, sizes, activation="relu", output_activation=None, bias=True,
                 dropout=0.0, device=None, dtype=None):
        super().__init__()
        sizes = [int(n) for n in sizes]
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output size, got "
                             f"{sizes}.")
        self.sizes = sizes
        layers = []
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(n_in, n_out, bias=bias, device=device, dtype=dtype))
            if k < len(sizes) - 2:
                act = _activation(activation, "activation")
                if act is not None:
                    layers.append(act)
                if dropout:
                    layers.append(Dropout(dropout))
        out = _activation(output_activation, "output_activation")
        if out is not None:
            layers.append(out)
        self.layers = Sequential(*layers)

    def forward(self, input):
        return self.layers(input)
