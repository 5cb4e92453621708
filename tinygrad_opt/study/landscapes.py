"""Test functions for optimizer races -- two-dimensional, and two one-dimensional -- in
Tensor ops.

Each :class:`Landscape` is f(x, y) built from Tensor operations, so every
optimizer runs on it -- first order (the gradient by backward), Newton (the
Hessian by double backward), BFGS, L-BFGS -- and, where f is a sum of squares
f = Σ rᵢ², the residuals r(x, y) for Gauss-Newton and Levenberg-Marquardt
(which minimise ½‖r‖² = f/2: the same minimisers). ``landscape(p)`` takes a
parameter Tensor p of shape (2,); ``landscape.value(X, Y)`` evaluates grids.

=================  =============================================  ======================
name               f(x, y)                                        minimiser(s), f*
=================  =============================================  ======================
rosenbrock         (1-x)² + 100(y-x²)²                            (1, 1), 0
beale              (1.5-x+xy)² + (2.25-x+xy²)² + (2.625-x+xy³)²   (3, 0.5), 0
booth              (x+2y-7)² + (2x+y-5)²                          (1, 3), 0
himmelblau         (x²+y-11)² + (x+y²-7)²                         four, 0
six_hump_camel     (4-2.1x²+x⁴/3)x² + xy + (-4+4y²)y²             (±0.0898, ∓0.7127),
                                                                  -1.031628
rastrigin          20 + Σ (t² - 10 cos 2πt)                       (0, 0), 0
saddle             x² - y²                                        none (saddle at 0)
quadratic          ½(u² + κv²), (u, v) = R(θ)(x, y)               (0, 0), 0
=================  =============================================  ======================

The curvature facts the races show (``docs``: beyond.md §h): Rosenbrock's
Hessian at (1, 1) is [[802, -400], [-400, 200]] with eigenvalues 0.399 and
1001.6 (κ ≈ 2508: a curved, narrow valley); Booth's is constant
[[10, 8], [8, 10]] (eigenvalues 2 and 18), so Newton and Gauss-Newton finish
in one step; on the quadratic gradient descent is stable iff η < 2/κ and
converges at rate |1 - η| along u -- the lecture's "poor conditioning"; on
x² - y² the pure Newton step jumps onto the saddle.

``default_lr(spec)`` gives a step size for optimizers that have none: about
1/λmax along the usual path for gradient descent (on the quadratic the best fixed
step 2/(1 + κ), which zigzags across the valley as the lecture draws it), and a step
of a few percent
of the plotting box for the adaptive methods (Adam moves each coordinate by
about lr per step whatever the gradient's size). Momentum and Nesterov get
gradient descent's lr times (1 - β): on a steady slope the heavy ball's step
grows to lr/(1 - β), so at the same lr it would take steps 10 times larger
(β = 0.9) and oscillate where gradient descent does not. At lr·(1 - β) both
have the same effective step, and momentum damps the zigzag, as the lecture
draws it (issue 13: the fair comparison).

The 1-D landscapes (``LANDSCAPES_1D``: ``parabola`` x², ``double_well``
x⁴ - 3x² + x, with a local minimum at x ≈ 1.131 beside the global one at
x ≈ -1.301) are the lecture's small/large learning-rate pictures: race them
like the 2-D ones (``race.race("parabola", ["sgd:lr=0.1", "sgd:lr=0.9"])``)
and draw them as a curve with the iterates on it (``plots.landscape_1d``).
"""

import math

import numpy as np

from .. import functions as F
from ..functions import stack
from ..op import no_grad
from ..tensor import Tensor

__all__ = ["LANDSCAPES", "LANDSCAPES_1D", "Landscape", "get", "names", "names_1d",
           "quadratic"]


class Landscape:
    """A test function of 2 (or 1) variables with its usual start points and known minima.

    Args:
        name: the registry name.
        title: for plots ("Rosenbrock").
        fn: ``fn(x, y)`` -> f (``fn(x)`` in 1-D), elementwise Tensor ops (Tensors of one
            shape). The number of variables is the length of the start points.
        minima: the known minimisers [(x, y), ...] (empty: none, e.g. the saddle).
        f_min: the minimum value f* (None when f is unbounded below).
        starts: {name: (x, y)}; the first is the default start.
        bounds: ((xmin, xmax), (ymin, ymax)) of the picture.
        residuals: ``residuals(x, y)`` -> [r₁, r₂, ...] with f = Σ rᵢ², or None.
        lr: the gradient-descent step (≈ 1/λmax along the usual path).
        adaptive_lr: the step of the adaptive methods (Adam, RMSProp, AdaGrad).
        log_levels: contour levels spaced in log(f - f*) (valleys) or linear.
        floor: a race stops when f falls below it (f unbounded below: "escaped").
        note: one line on what the landscape teaches.
    """

    def __init__(self, name, title, fn, *, minima, f_min, starts, bounds, residuals=None,
                 lr=1e-3, adaptive_lr=1e-2, log_levels=True, floor=None, note=""):
        self.name, self.title, self.fn = name, title, fn
        self.minima = [tuple(float(c) for c in m) for m in minima]
        self.f_min = f_min
        self.starts = {k: tuple(float(c) for c in v) for k, v in starts.items()}
        self.bounds = bounds
        self._residuals = residuals
        self.lr, self.adaptive_lr = lr, adaptive_lr
        self.log_levels, self.floor, self.note = log_levels, floor, note
        self.dim = len(self.start)

    # -- evaluation -------------------------------------------------------------------

    def _coords(self, p):
        return [p[i] for i in range(self.dim)]

    def __call__(self, p):
        """f(p) for a parameter Tensor p of shape (dim,): a 0-d Tensor with its graph."""
        return self.fn(*self._coords(p))

    def residuals(self, p):
        """The residual vector r(p) (f = Σ rᵢ² = 2·(½‖r‖²)); ValueError if none."""
        if self._residuals is None:
            raise ValueError(f"the {self.name} landscape is not a sum of squares, so it has no "
                             "residual form for Gauss-Newton / Levenberg-Marquardt; choose "
                             f"one of {', '.join(least_squares_names())}.")

        return stack(list(self._residuals(*self._coords(p))))

    @property
    def least_squares(self):
        """Whether Gauss-Newton and Levenberg-Marquardt can run here."""
        return self._residuals is not None

    def value(self, *coords):
        """f on arrays -- ``value(X, Y)`` (a grid for contours), ``value(X)`` in 1-D -- as
        a float64 NumPy array."""
        with no_grad():
            args = [Tensor(np.asarray(c, dtype=np.float64)) for c in coords]
            return np.asarray(self.fn(*args).numpy(), dtype=np.float64)

    def grid(self, n=200, bounds=None):
        """(X, Y, Z) on an n × n grid over ``bounds`` (default: the landscape's)."""
        (x0, x1), (y0, y1) = bounds or self.bounds
        X, Y = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
        return X, Y, self.value(X, Y)

    # -- what races measure -----------------------------------------------------------

    @property
    def start(self):
        """The default start point (the first of ``starts``)."""
        return next(iter(self.starts.values()))

    def distance(self, points):
        """Distance from each point (an (n, dim) array, or one point) to the nearest known
        minimiser; NaN where there is none."""
        pts = np.asarray(points, dtype=np.float64)
        single = pts.ndim == 1
        pts = pts.reshape(-1, self.dim)
        if not self.minima:
            out = np.full(len(pts), np.nan)
        else:
            m = np.asarray(self.minima)
            out = np.sqrt(((pts[:, None, :] - m[None, :, :]) ** 2).sum(-1)).min(axis=1)
        return float(out[0]) if single else out

    def gap(self, values):
        """f - f* (NaN when f* is unknown)."""
        v = np.asarray(values, dtype=np.float64)
        return v - self.f_min if self.f_min is not None else np.full_like(v, np.nan)

    def default_lr(self, spec):
        """A step size for an optimizer spec that gives none (see the module doc):
        gradient descent's lr, times (1 - β) for momentum β."""
        if spec.family == "gd":
            beta = float(spec.kwargs.get("momentum", 0.0) or 0.0)
            return self.lr * (1.0 - beta)
        if spec.family == "adaptive":
            return self.adaptive_lr
        return None

    def __repr__(self):
        return f"Landscape({self.name!r}, start={self.start}, minima={self.minima})"


# -- the functions ---------------------------------------------------------------------------


def _rosenbrock_r(x, y):
    return [1 - x, 10 * (y - x * x)]


def _beale_r(x, y):
    return [1.5 - x + x * y, 2.25 - x + x * y * y, 2.625 - x + x * y * y * y]


def _booth_r(x, y):
    return [x + 2 * y - 7, 2 * x + y - 5]


def _himmelblau_r(x, y):
    return [x * x + y - 11, x + y * y - 7]


def _sum_of_squares(residuals):
    def fn(x, y):
        total = None
        for r in residuals(x, y):
            total = r * r if total is None else total + r * r
        return total
    return fn


def _camel(x, y):
    x2, y2 = x * x, y * y
    return (4 - 2.1 * x2 + x2 * x2 / 3) * x2 + x * y + (-4 + 4 * y2) * y2


def _rastrigin(x, y):
    two_pi = 2 * math.pi
    return 20 + x * x - 10 * F.cos(two_pi * x) + y * y - 10 * F.cos(two_pi * y)


def _saddle(x, y):
    return x * x - y * y


# six-hump camel: the two global minimisers and f* (solved to machine precision)
_CAMEL_MIN = (0.08984201310031807, -0.7126564030207396)
_CAMEL_F = -1.0316284534898774


def quadratic(kappa=20.0, angle=0.0):
    """The ill-conditioned quadratic f = ½(u² + κ v²), (u, v) the point rotated by
    ``angle`` degrees: Hessian eigenvalues 1 and κ (condition number κ), minimum 0 at
    the origin. Gradient descent needs η < 2/κ and then shrinks u by (1 - η) per step,
    so it takes about κ/2 steps per e-fold at the best fixed η -- the lecture's "poor
    conditioning". Residuals r = (u/√2, √(κ/2)·v) make it least squares too.
    """
    kappa, angle = float(kappa), float(angle)
    if not kappa >= 1:
        raise ValueError(f"quadratic: kappa={kappa} must be >= 1 (the condition number "
                         "λmax/λmin).")
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))

    def residuals(x, y):
        u = c * x + s * y
        v = -s * x + c * y
        return [u * math.sqrt(0.5), v * math.sqrt(0.5 * kappa)]

    lr = 2.0 / (1.0 + kappa)  # the best fixed step: both directions shrink by (κ-1)/(κ+1)
    name = "quadratic" if (kappa, angle) == (20.0, 0.0) else \
        f"quadratic:kappa={kappa:g},angle={angle:g}"
    return Landscape(
        name, f"ill-conditioned quadratic (κ = {kappa:g}"
              + (f", rotated {angle:g}°)" if angle else ")"),
        _sum_of_squares(residuals), minima=[(0.0, 0.0)], f_min=0.0,
        starts={"d2l": (-5.0, -2.0), "corner": (-5.0, 5.0)},
        bounds=((-6.0, 6.0), (-4.0, 4.0)), residuals=residuals, lr=lr, adaptive_lr=0.3,
        note=f"condition number κ = {kappa:g}: gradient descent zigzags unless η ≪ 1/κ")


def _build():
    out = {}
    out["rosenbrock"] = Landscape(
        "rosenbrock", "Rosenbrock", _sum_of_squares(_rosenbrock_r), minima=[(1, 1)], f_min=0.0,
        starts={"classic": (-1.2, 1.0), "jettify": (-2.0, 2.0), "pytorch": (1.5, 1.5)},
        bounds=((-2.0, 2.0), (-1.0, 3.0)), residuals=_rosenbrock_r, lr=1e-3, adaptive_lr=0.02,
        note="a curved, narrow valley: κ ≈ 2500 at the minimum")
    out["beale"] = Landscape(
        "beale", "Beale", _sum_of_squares(_beale_r), minima=[(3, 0.5)], f_min=0.0,
        starts={"wassname": (2.0, 1.7), "tiao": (3.0, 4.0), "waldmann": (1.0, 2.0)},
        bounds=((-4.5, 4.5), (-4.5, 4.5)), residuals=_beale_r, lr=1e-3, adaptive_lr=0.05,
        note="flat plateaus and steep walls; saddle at (0, 1)")
    out["booth"] = Landscape(
        "booth", "Booth", _sum_of_squares(_booth_r), minima=[(1, 3)], f_min=0.0,
        starts={"origin": (0.0, 0.0), "corner": (-10.0, 10.0)},
        bounds=((-10.0, 10.0), (-10.0, 10.0)), residuals=_booth_r, lr=0.05, adaptive_lr=0.3,
        note="a quadratic: Newton and Gauss-Newton land on (1, 3) in one step")
    out["himmelblau"] = Landscape(
        "himmelblau", "Himmelblau", _sum_of_squares(_himmelblau_r),
        minima=[(3.0, 2.0), (-2.805118086952745, 3.131312518250573),
                (-3.779310253377747, -3.283185991286170),
                (3.584428340330492, -1.848126526964404)], f_min=0.0,
        starts={"origin": (0.0, 0.0), "right": (1.0, 0.0), "west": (-4.0, 0.0),
                "east": (4.0, 0.0)},
        bounds=((-5.0, 5.0), (-5.0, 5.0)), residuals=_himmelblau_r, lr=0.01, adaptive_lr=0.1,
        note="four minima: which one an optimizer finds depends on its path")
    out["six_hump_camel"] = Landscape(
        "six_hump_camel", "six-hump camel", _camel,
        minima=[_CAMEL_MIN, (-_CAMEL_MIN[0], -_CAMEL_MIN[1])], f_min=_CAMEL_F,
        starts={"wassname": (1.3, -1.5), "center": (0.5, 0.5)},
        bounds=((-2.0, 2.0), (-1.6, 1.6)), lr=0.01, adaptive_lr=0.05, log_levels=False,
        note="two global and four local minima, a saddle at the origin")
    out["rastrigin"] = Landscape(
        "rastrigin", "Rastrigin", _rastrigin, minima=[(0, 0)], f_min=0.0,
        starts={"jettify": (-2.0, 3.5)}, bounds=((-4.5, 4.5), (-4.5, 4.5)), lr=2e-3,
        adaptive_lr=0.1, log_levels=False,
        note="a local minimum at every integer point: local methods stop in the nearest one")
    out["saddle"] = Landscape(
        "saddle", "saddle x² - y²", _saddle, minima=[], f_min=None,
        starts={"near": (1.0, 1e-3), "kracon": (5.5, 0.01)}, bounds=((-2.0, 2.0), (-2.0, 2.0)),
        lr=0.05, adaptive_lr=0.05, log_levels=False, floor=-100.0,
        note="unbounded below: gradient descent escapes along y, pure Newton jumps onto (0, 0)")
    out["quadratic"] = quadratic()
    return out


LANDSCAPES = _build()


def _build_1d():
    out = {}
    out["parabola"] = Landscape(
        "parabola", "parabola x²", lambda x: x * x, minima=[(0.0,)], f_min=0.0,
        starts={"right": (4.0,)}, bounds=((-5.0, 5.0),), lr=0.1, adaptive_lr=0.5,
        log_levels=False,
        note="f'' = 2: gradient descent creeps for lr ≪ 0.5, lands in one step at 0.5, "
             "oscillates for 0.5 < lr < 1 and diverges for lr > 1")
    out["double_well"] = Landscape(
        "double_well", "double well x⁴ - 3x² + x", lambda x: x * x * x * x - 3 * x * x + x,
        minima=[(-1.300839565941577,)], f_min=-3.5139050389347886,
        starts={"right": (2.0,), "left": (-2.0,)}, bounds=((-2.2, 2.2),), lr=0.02,
        adaptive_lr=0.1, log_levels=False,
        note="a local minimum at x ≈ 1.131 (f ≈ -1.070) beside the global one at x ≈ -1.301 "
             "(f ≈ -3.514): from the right a small step stops in the local one")
    return out


LANDSCAPES_1D = _build_1d()
# The local minimiser of the double well (the global one is its ``minima``).
DOUBLE_WELL_LOCAL_MIN = 1.1309011226299859
_ALIASES = {"camel": "six_hump_camel", "six-hump-camel": "six_hump_camel",
            "sixhumpcamel": "six_hump_camel", "ill-conditioned": "quadratic",
            "ill_conditioned": "quadratic"}


def names():
    """The 2-D registry's names (the races' contour plots, the lab)."""
    return list(LANDSCAPES)


def names_1d():
    """The 1-D landscapes' names."""
    return list(LANDSCAPES_1D)


def least_squares_names():
    return [n for n, ls in LANDSCAPES.items() if ls.least_squares]


def get(spec):
    """A landscape by name: ``"rosenbrock"``, ``"camel"``, or the quadratic with its
    knobs ``"quadratic:kappa=100,angle=30"``. A Landscape passes through."""
    if isinstance(spec, Landscape):
        return spec
    name, _, rest = str(spec).strip().partition(":")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key == "quadratic" and rest.strip():
        kwargs = {}
        for item in rest.split(","):
            k, sep, v = item.partition("=")
            k = k.strip()
            if not sep or k not in ("kappa", "angle"):
                raise ValueError(f"landscape quadratic: expected kappa=K and/or angle=DEGREES "
                                 f"(as in quadratic:kappa=100,angle=30), got {item!r}.")
            try:
                kwargs[k] = float(v)
            except ValueError:
                raise ValueError(f"landscape quadratic: {k}={v!r} is not a number.") from None
        return quadratic(**kwargs)
    if key in LANDSCAPES_1D and not rest.strip():
        return LANDSCAPES_1D[key]
    if key not in LANDSCAPES or rest.strip():
        raise ValueError(f"unknown landscape {spec!r}; choose from "
                         f"{', '.join(list(LANDSCAPES) + list(LANDSCAPES_1D))} "
                         "(quadratic takes :kappa=K,angle=DEGREES).")
    return LANDSCAPES[key]
