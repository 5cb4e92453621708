"""The race panel: ``study.race.race`` on a landscape, as JSON, and the landscape's grid.

The runs are the library's own (:func:`tinygrad_opt.study.race.race` with the
request's arguments); this module only checks the request against the caps and
adds what the picture needs: the line-search points each run tried and did not
keep, and f on a grid for the contours.
"""

import inspect

import numpy as np

from ..study import landscapes, specs
from ..study import race as _race
from . import limits
from .requests import BadRequest, number, point, text


def _landscape(body):
    name = text(body, "landscape", "rosenbrock")
    try:
        return landscapes.get(name)
    except ValueError as error:
        raise BadRequest(str(error)) from None


KNOBS = ("lr", "momentum", "betas", "alpha", "rho", "lam", "damping")  # the page's sliders
SECOND_ORDER = ("newton", "newton-pure", "newton-abs", "newton-ls", "newton-cg", "bfgs",
                "lbfgs", "gauss-newton", "lm")


def kind(spec):
    """What the page calls the method: "first order", "line search" (gradient descent
    with one), "second order" (Newton and quasi-Newton) or "derivative-free"."""
    if spec.contract == "value":
        return "derivative-free"
    if spec.name in SECOND_ORDER:
        return "second order"
    return "line search" if spec.contract == "graph" else "first order"


def optimizer_knobs(landscape=None):
    """For each optimizer name: its description, the hyperparameters the page has a
    slider for with their defaults (lr as the race would use on ``landscape``), and
    whether it trains on mini-batches."""
    out = []
    for name, line in zip(specs.NAMES, specs.names().splitlines()):
        spec = specs.parse(name)
        defaults = {k: p.default for k, p in inspect.signature(spec.cls.__init__).parameters
                    .items() if k in KNOBS}
        defaults.update({k: v for k, v in spec.resolve(landscape).items() if k in KNOBS})
        out.append({"name": name, "description": line[len(name):].strip(),
                    "knobs": {k: v for k, v in defaults.items()
                              if not isinstance(v, str)},  # None: "auto"
                    "contract": spec.contract, "kind": kind(spec)})
    return out


def race(body):
    """The answer of ``POST /api/race``: ``Race.to_dict()`` of ``study.race.race`` with the
    request's arguments, plus each run's rejected line-search trial points; runs in the
    order asked."""
    landscape = _landscape(body)
    optimizers = body.get("optimizers")
    if not isinstance(optimizers, list) or not optimizers or not all(
            isinstance(o, str) for o in optimizers):
        raise BadRequest("optimizers must be a non-empty list of optimizer specs such as "
                         "[\"adam:lr=0.05\", \"newton\"].")
    if len(optimizers) > limits.MAX_RACE_OPTIMIZERS:
        raise BadRequest(f"{len(optimizers)} optimizers asked; one race takes at most "
                         f"{limits.MAX_RACE_OPTIMIZERS}.")
    try:
        result = _race.race(landscape, optimizers, start=point(body, "start"),
                            steps=number(body, "steps", 200, 1, limits.MAX_RACE_STEPS,
                                         integer=True),
                            tol=number(body, "tol", 1e-6, 1e-15, 1.0),
                            noise=number(body, "noise", 0.0, 0.0, 1e3),
                            seed=number(body, "seed", 0, 0, 2**31 - 1, integer=True))
    except ValueError as error:  # an unknown optimizer, a bad hyperparameter, lm on a
        raise BadRequest(str(error)) from None  # landscape that is not least squares, ...
    out = result.to_dict()
    for run, data in zip(result.runs, out["runs"]):
        data["trials"] = run.trial_points().tolist()
        data["kind"] = kind(run.spec)
    out["title"] = landscape.title
    return out


def landscape_grid(body):
    """The answer of ``POST /api/landscape``: f on a GRID × GRID grid over the bounds
    (or ``bounds``), its minimisers and starts: what the contour picture needs."""
    landscape = _landscape(body)
    if landscape.dim != 2:
        raise BadRequest(f"the race panel draws 2-D landscapes and {landscape.name} has "
                         f"{landscape.dim} variable; choose from "
                         f"{', '.join(landscapes.names())}.")
    _, _, Z = landscape.grid(limits.GRID)
    (x0, x1), (y0, y1) = landscape.bounds
    with np.errstate(all="ignore"):
        shifted = Z - (landscape.f_min if landscape.f_min is not None else np.nanmin(Z))
        # Valleys show in log(f - f*); bumpy functions in f itself.
        shade = np.log10(shifted + 1e-3) if landscape.log_levels else Z
    return {"name": landscape.name, "title": landscape.title, "note": landscape.note,
            "bounds": [[x0, x1], [y0, y1]], "n": limits.GRID, "z": Z.tolist(),
            "shade": shade.tolist(), "log": bool(landscape.log_levels),
            "minima": [list(m) for m in landscape.minima], "f_min": landscape.f_min,
            "starts": {k: list(v) for k, v in landscape.starts.items()},
            "start": list(landscape.start), "least_squares": landscape.least_squares}

