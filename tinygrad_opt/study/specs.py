"""Optimizers by name: ``"adam"``, ``"sgd:lr=1e-3,momentum=0.9"``, ``"lbfgs"``, ``"lm"``.

The races, sweeps and the command line name optimizers with short strings.
:func:`parse` turns ``"NAME"`` or ``"NAME:key=value,key=value"`` into an
:class:`OptimizerSpec`: the class, its keyword arguments, and the *closure
contract* it needs:

* ``"first"`` -- the first-order optimizers (SGD, Adam, ...) and L-BFGS use
  PyTorch's closure, which zeroes the gradients, calls ``backward()`` and
  returns the loss;
* ``"graph"`` -- Newton, Newton-CG, BFGS and GD-with-line-search
  differentiate the loss themselves: the closure returns it with its graph;
* ``"residual"`` -- Gauss-Newton and Levenberg-Marquardt want the residual
  vector r (the loss is ½‖r‖²);
* ``"value"`` -- the derivative-free methods (random search, random local
  search, numerical-gradient descent, simulated annealing, an evolution
  strategy; :mod:`~tinygrad_opt.study.derivative_free`) only read the loss's
  value, as often as they need.

:func:`closure_for` builds the right closure for a loss function (and a
residual function, for least squares).

Learning rates. A name such as ``"sgd"`` has no learning rate of its own:
when none is given, :meth:`OptimizerSpec.build` asks the problem for one
(``problem.default_lr(spec)``; a 2-D landscape knows a stable step for its
curvature), and otherwise uses the class's default (PyTorch's).
"""

import inspect

from .. import optim
from ..tensor import Tensor
from . import derivative_free as dfo

__all__ = ["NAMES", "OptimizerSpec", "closure_for", "names", "parse", "parse_list"]

# name: (class, fixed keyword arguments, contract, family, description)
# family: "gd" (plain gradient steps: the landscape's lr), "adaptive" (per-coordinate
# steps: the landscape's adaptive_lr), "own" (the class's default lr is meaningful).
_TABLE = {
    "sgd": (optim.SGD, {}, "first", "gd", "gradient descent θ ← θ - η∇f"),
    "momentum": (optim.SGD, {"momentum": 0.9}, "first", "gd",
                 "heavy-ball momentum, β = 0.9"),
    "nesterov": (optim.SGD, {"momentum": 0.9, "nesterov": True}, "first", "gd",
                 "Nesterov momentum, β = 0.9"),
    "adagrad": (optim.Adagrad, {}, "first", "adaptive", "AdaGrad: η/√(Σg²)"),
    "rmsprop": (optim.RMSprop, {}, "first", "adaptive", "RMSProp: η/√(EMA g²)"),
    "adadelta": (optim.Adadelta, {}, "first", "own", "AdaDelta (lr = 1)"),
    "adam": (optim.Adam, {}, "first", "adaptive", "Adam, β = (0.9, 0.999)"),
    "amsgrad": (optim.Adam, {"amsgrad": True}, "first", "adaptive", "Adam with AMSGrad"),
    "adamw": (optim.AdamW, {}, "first", "adaptive", "Adam with decoupled weight decay"),
    "adamax": (optim.Adamax, {}, "first", "adaptive", "AdaMax (∞-norm Adam)"),
    "nadam": (optim.NAdam, {}, "first", "adaptive", "Adam with Nesterov momentum"),
    "gd-armijo": (optim.GD, {"line_search": "armijo"}, "graph", "own",
                  "gradient descent, Armijo backtracking"),
    "gd-wolfe": (optim.GD, {"line_search": "strong_wolfe"}, "graph", "own",
                 "gradient descent, strong Wolfe line search"),
    "gd-exact": (optim.GD, {"line_search": "exact"}, "graph", "own",
                 "steepest descent, exact step gᵀg/gᵀHg"),
    "newton": (optim.Newton, {}, "graph", "own", "Newton, damped where H is indefinite"),
    "newton-pure": (optim.Newton, {"modification": None}, "graph", "own",
                    "the plain Newton step H⁻¹g"),
    "newton-abs": (optim.Newton, {"modification": "abs"}, "graph", "own",
                   "saddle-free Newton, |H|⁻¹g"),
    "newton-ls": (optim.Newton, {"line_search": "strong_wolfe"}, "graph", "own",
                  "damped Newton with a strong Wolfe line search"),
    "newton-cg": (optim.NewtonCG, {}, "graph", "own", "Hessian-free Newton-CG"),
    "bfgs": (optim.BFGS, {}, "graph", "own", "BFGS, strong Wolfe line search"),
    "lbfgs": (optim.LBFGS, {"line_search_fn": "strong_wolfe", "max_iter": 1}, "first", "own",
              "L-BFGS, strong Wolfe; one iteration per step"),
    "gauss-newton": (optim.GaussNewton, {}, "residual", "own", "Gauss-Newton JᵀJ δ = -Jᵀr"),
    "lm": (optim.LevenbergMarquardt, {}, "residual", "own",
           "Levenberg-Marquardt, trust region"),
    "random-search": (dfo.RandomSearch, {}, "value", "own",
                      "random points around the start, keep the best (no gradient)"),
    "random-local-search": (dfo.RandomLocalSearch, {}, "value", "own",
                            "perturb the best point, keep improvements (no gradient)"),
    "numerical-gd": (dfo.NumericalGD, {}, "value", "gd",
                     "gradient descent on forward differences, h = 1e-4 (n + 1 evaluations)"),
    "annealing": (dfo.SimulatedAnnealing, {}, "value", "own",
                  "simulated annealing, Metropolis acceptance, geometric cooling"),
    "evolution": (dfo.EvolutionStrategy, {}, "value", "own",
                  "(μ/μ, λ) evolution strategy, 20 children, 5 parents"),
}
_ALIASES = {"gd": "sgd", "heavy-ball": "momentum", "nag": "nesterov", "l-bfgs": "lbfgs",
            "levenberg-marquardt": "lm", "gn": "gauss-newton", "newtoncg": "newton-cg",
            "simulated-annealing": "annealing", "sa": "annealing", "es": "evolution",
            "evolution-strategy": "evolution", "numerical-gradient": "numerical-gd"}

NAMES = tuple(_TABLE)


def names():
    """The known optimizer names, one per line with what each one is."""
    width = max(len(n) for n in _TABLE)
    return "\n".join(f"{n:<{width}}  {row[4]}" for n, row in _TABLE.items())


def _value(text):
    """'1e-3' -> 0.001, 'true' -> True, 'none' -> None, '0.9,0.99' stays a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


class OptimizerSpec:
    """An optimizer to build later: ``cls(params, **kwargs)`` with a closure contract.

    Attributes:
        name (str): the table's name (``"adam"``).
        label (str): what plots and tables show (``"adam"``, ``"sgd lr=0.01"``).
        cls: the optimizer class.
        kwargs (dict): the fixed arguments plus the ones the user gave.
        contract (str): ``"first"``, ``"graph"``, ``"residual"`` or ``"value"`` (see the
            module).
        family (str): ``"gd"``, ``"adaptive"`` or ``"own"``: where a default lr comes from.
    """

    def __init__(self, name, cls, kwargs, contract, family, label=None, given=None):
        self.name, self.cls, self.kwargs = name, cls, dict(kwargs)
        self.contract, self.family = contract, family
        self.given = dict(given or {})
        self.label = label or name

    @property
    def takes_lr(self):
        return "lr" in inspect.signature(self.cls.__init__).parameters

    @property
    def tunable(self):
        """Whether the fair mode tunes its lr: the first-order methods, whose lr is a
        step size to choose (second-order methods take the step their model says)."""
        return self.takes_lr and self.family != "own"

    def with_lr(self, lr):
        """A copy with ``lr`` set (the label says so)."""
        given = dict(self.given, lr=lr)
        return OptimizerSpec(self.name, self.cls, dict(self.kwargs, lr=lr), self.contract,
                             self.family, label=_label(self.name, given), given=given)

    def resolve(self, problem=None):
        """The keyword arguments, with lr filled from ``problem.default_lr(self)``
        when none was given and the problem has an opinion."""
        kwargs = dict(self.kwargs)
        if self.takes_lr and "lr" not in kwargs and problem is not None \
                and hasattr(problem, "default_lr"):
            lr = problem.default_lr(self)
            if lr is not None:
                kwargs["lr"] = lr
        return kwargs

    def build(self, params, problem=None):
        """``cls(params, **kwargs)`` (lr from the problem if not given)."""
        return self.cls(params, **self.resolve(problem))

    def __repr__(self):
        return f"OptimizerSpec({self.label!r}, {self.cls.__name__}, {self.kwargs})"


def _label(name, given):
    if not given:
        return name
    return name + " " + " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in given.items())


def parse(text):
    """``"NAME"`` or ``"NAME:key=value,..."`` -> :class:`OptimizerSpec`.

    Raises ValueError (one sentence) for an unknown name or keyword, or a value the
    optimizer refuses (a negative lr): the optimizer is built once on a dummy
    parameter to check.
    """
    if isinstance(text, OptimizerSpec):
        return text
    name, _, rest = str(text).strip().partition(":")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _TABLE:
        raise ValueError(f"unknown optimizer {name.strip()!r}; choose from "
                         f"{', '.join(_TABLE)}.")
    cls, fixed, contract, family, _ = _TABLE[key]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self",
                                                                                  "params")]
    given = {}
    if rest.strip():
        for item in _split_items(rest):
            k, sep, v = item.partition("=")
            k = k.strip()
            if not sep or not k:
                raise ValueError(f"optimizer {key}: expected key=value, got {item!r} (as in "
                                 f"{key}:lr=0.01).")
            if k not in allowed:
                raise ValueError(f"optimizer {key}: unknown hyperparameter {k!r}; "
                                 f"{cls.__name__} takes {', '.join(allowed)}.")
            value = _value(v)
            if k == "betas" and isinstance(value, str):
                value = tuple(float(b) for b in value.strip("()").split("/"))
            given[k] = value
    spec = OptimizerSpec(key, cls, dict(fixed, **given), contract, family,
                         label=_label(key, given), given=given)
    _check(spec)
    return spec


def _split_items(text):
    """Split ``lr=0.1,betas=0.9/0.99`` at commas."""
    return [item for item in text.split(",") if item.strip()]


def _check(spec):
    """Build the optimizer on a dummy parameter: its own checks run (lr >= 0, ...)."""
    dummy = Tensor([0.0, 0.0], dtype="float64", requires_grad=True)
    try:
        spec.cls([dummy], **spec.kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"optimizer {spec.label}: {error}") from None


def parse_list(text):
    """``"sgd,adam:lr=0.1;newton"``: specs separated by ``;`` or by commas that
    start a new name (a comma followed by ``key=`` belongs to the previous one)."""
    if isinstance(text, (list, tuple)):
        return [parse(t) for t in text]
    items, current = [], ""
    for piece in str(text).replace(";", ",;").split(","):
        piece_clean = piece.lstrip(";")
        starts_new = piece.startswith(";") or "=" not in piece_clean or ":" in piece_clean
        if current and starts_new:
            items.append(current)
            current = piece_clean
        else:
            current = f"{current},{piece_clean}" if current else piece_clean
    if current:
        items.append(current)
    specs = [parse(item) for item in items if item.strip()]
    if not specs:
        raise ValueError("no optimizer given; name one or more, e.g. sgd,adam,newton.")
    return specs


def closure_for(spec, optimizer, loss_fn, residual_fn=None, on_eval=None):
    """The closure ``optimizer.step`` wants, for a loss function of no arguments.

    ``on_eval()`` runs at every call (the races record the point evaluated).
    ``residual_fn`` is required by the ``"residual"`` contract.
    """
    if spec.contract == "residual":
        if residual_fn is None:
            raise ValueError(f"{spec.name} solves least-squares problems and needs residuals "
                             "r with loss = ½‖r‖²; this problem has none.")

        def closure():
            if on_eval is not None:
                on_eval()
            return residual_fn()
    elif spec.contract in ("graph", "value"):  # the optimizer differentiates, or only reads
        def closure():
            if on_eval is not None:
                on_eval()
            return loss_fn()
    else:
        def closure():
            if on_eval is not None:
                on_eval()
            optimizer.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss
    return closure
