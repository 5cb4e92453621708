"""``Dropout`` and ``Flatten``."""

from . import functional as F
from .module import Module


class Dropout(Module):
    """During training, zero each element with probability ``p`` and scale the others
    by 1/(1 - p) (inverted dropout); in eval mode, the identity. The masks come from
    the generator that ``tg.manual_seed`` seeds."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}.")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Flatten(Module):
    """Flatten dimensions ``start_dim`` .. ``end_dim`` into one: (N, 3, 4) -> (N, 12)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
