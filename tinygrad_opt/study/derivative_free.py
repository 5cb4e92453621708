"""Optimizers that never ask for a gradient: the lecture's "why gradients" as a race.

The course opens with "Strategy #1: random search" (try random weights, keep the
best) and "Strategy #2: follow the slope" -- first by perturbing the best point
at random, then by a numerical gradient. The lecture's list of derivative-free
methods adds evolution strategies and simulated annealing. All of them are
here, as optimizers with the usual ``step(closure)``; the closure returns the
loss (no ``backward()``: they only read its value) and each step calls it
as often as the method needs:

=====================  ==========================================  ===================
race name              one step                                    evaluations / step
=====================  ==========================================  ===================
random-search          θ₀ + scale·z, z ~ N(0, I); keep the best    ``samples``
random-local-search    θ_best + step_size·z; keep it if better     ``samples``
numerical-gd           θ ← θ - lr·ĝ, ĝ by finite differences       n + 1 (forward),
                       (``tg.autograd.numerical_grad``)            2n (central)
annealing              θ' = θ + step_size·z, taken with the        1
                       Metropolis rule: always if f' <= f, else
                       with probability exp(-(f' - f)/T); T ×=
                       ``cooling``
evolution              (μ/μ, λ) evolution strategy: λ =            ``population``
                       ``population`` children mean + σ·z, the
                       mean moves to the average of the μ =
                       ``elite`` best, σ ×= ``decay``
=====================  ==========================================  ===================

(n is the number of parameters; the first step of the searches also
evaluates the start, and ``evolution`` reports the loss at its best child.)
Every one is seeded (``seed``), so a race is reproducible. The parameters hold
the method's current point: the best found so far for the searches, the
current state of the annealing chain, the mean for evolution. Each keeps a
record in ``optimizer.state[first parameter]``: ``nfev`` (closure calls),
``best_loss`` and ``converged`` (always False: none of them knows when it is
done).
"""

import math

import numpy as np

from ..autograd.numerical import SCHEMES, numerical_grad
from ..op import no_grad
from ..optim.optimizer import Optimizer, check_number
from ..tensor import Tensor

__all__ = ["DerivativeFree", "EvolutionStrategy", "NumericalGD", "RandomLocalSearch",
           "RandomSearch", "SimulatedAnnealing"]


class DerivativeFree(Optimizer):
    """What the derivative-free methods share: one flat parameter vector, a seeded
    generator, and ``_value(closure, θ)`` -- the loss at θ, counted in ``nfev``."""

    def __init__(self, params, defaults, seed):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"{type(self).__name__}: seed must be an integer, got {seed!r}.")
        super().__init__(params, defaults)
        self._params = [p for group in self.param_groups for p in group["params"]]
        self._rng = np.random.default_rng(seed)
        self._sizes = [p.numel() for p in self._params]

    @property
    def record(self):
        """``nfev``, ``best_loss``, ``converged`` (the state of the first parameter)."""
        state = self.state[self._params[0]]
        if "nfev" not in state:
            state.update(nfev=0, best_loss=math.inf, converged=False)
        return state

    def _gather(self):
        return np.concatenate([np.asarray(p.data, dtype=np.float64).reshape(-1)
                               for p in self._params])

    def _assign(self, theta):
        start = 0
        for p, n in zip(self._params, self._sizes):
            p.data[...] = theta[start:start + n].reshape(p.shape).astype(p.dtype)
            start += n

    def _value(self, closure, theta):
        """f(θ): the closure's loss as a float, with the parameters set to θ."""
        self._assign(theta)
        with no_grad():
            loss = closure()
        self.record["nfev"] += 1
        value = float(loss.item()) if isinstance(loss, Tensor) else float(loss)
        return value if math.isfinite(value) else math.inf

    def _normal(self):
        return self._rng.standard_normal(sum(self._sizes))

    def step(self, closure=None):
        """One step of the method; returns the loss at the new point (a Tensor)."""
        if closure is None:
            raise RuntimeError(f"{type(self).__name__}.step needs a closure that returns the "
                               "loss, e.g. opt.step(lambda: loss_fn(model(X), y)); it only "
                               "reads the value (no backward).")
        value = self._step(closure, self.record, self.param_groups[0])
        self.record["best_loss"] = min(self.record["best_loss"], value)
        return Tensor(value)

    def _step(self, closure, record, group):
        raise NotImplementedError


class _KeepTheBest(DerivativeFree):
    """Random search and random local search: sample around a centre, keep the best.
    ``spread`` names the hyperparameter that scales the samples."""

    def __init__(self, params, spread, samples, seed):
        check_number(self.spread, spread, 0.0, low_open=True)
        _check_count("samples", samples)
        super().__init__(params, {self.spread: spread, "samples": samples}, seed)

    def _step(self, closure, record, group):
        if "best" not in record:
            record["start"] = self._gather()
            record["best"] = record["start"]
            record["best_value"] = self._value(closure, record["best"])
        centre = record["start"] if self.global_search else record["best"]
        for _ in range(group["samples"]):
            candidate = centre + group[self.spread] * self._normal()
            value = self._value(closure, candidate)
            if value < record["best_value"]:
                record["best"], record["best_value"] = candidate, value
        self._assign(record["best"])
        return record["best_value"]


class RandomSearch(_KeepTheBest):
    """Strategy #1: random points θ₀ + scale·z around the start θ₀, keeping the best.

    The lecture's ``W = np.random.randn(10, 3073) * 0.0001`` is ``scale=1e-4`` from
    θ₀ = 0. Each step tries ``samples`` points."""

    global_search, spread = True, "scale"

    def __init__(self, params, scale=1.0, samples=1, seed=0):
        super().__init__(params, scale, samples, seed)


class RandomLocalSearch(_KeepTheBest):
    """Random local search: try θ_best + step_size·z and keep it if the loss falls (the
    lecture's ``W_try = W + np.random.randn(...) * step_size``)."""

    global_search, spread = False, "step_size"

    def __init__(self, params, step_size=0.1, samples=1, seed=0):
        super().__init__(params, step_size, samples, seed)


class NumericalGD(DerivativeFree):
    """Strategy #2: gradient descent on the numerical gradient, θ ← θ - lr·ĝ, with ĝ from
    :func:`tg.autograd.numerical_grad` (forward differences, h = ``eps``, as the slide;
    or ``scheme="central"``): n + 1 or 2n loss evaluations per step against one
    forward and one backward for backprop."""

    def __init__(self, params, lr=1e-3, eps=1e-4, scheme="forward", seed=0):
        check_number("lr", lr, 0.0, what="learning rate")
        check_number("eps", eps, 0.0, low_open=True)
        if scheme not in SCHEMES:
            raise ValueError(f"NumericalGD: scheme must be 'forward' or 'central', got "
                             f"{scheme!r}.")
        super().__init__(params, dict(lr=lr, eps=eps, scheme=scheme), seed)

    def _step(self, closure, record, group):
        theta = self._gather()

        def loss_at(*values):  # numerical_grad hands in perturbed copies of the parameters
            self._assign(np.concatenate([np.asarray(v.data, dtype=np.float64).reshape(-1)
                                         for v in values]))
            return closure()

        probes = [Tensor(p.data.copy(), requires_grad=True) for p in self._params]
        grads, evaluations = numerical_grad(loss_at, probes, eps=group["eps"],
                                            scheme=group["scheme"])
        record["nfev"] += evaluations
        g = np.concatenate([np.asarray(t.data, dtype=np.float64).reshape(-1) for t in grads])
        return self._value(closure, theta - group["lr"] * g)


class SimulatedAnnealing(DerivativeFree):
    """Simulated annealing: a random walk θ' = θ + step_size·z accepted by the Metropolis
    rule -- always when f(θ') <= f(θ), otherwise with probability exp(-(f(θ') - f(θ))/T)
    -- with the temperature T cooled geometrically (T ← ``cooling``·T) from
    ``temperature``. Hot, it climbs out of local minima; cold, it only descends."""

    def __init__(self, params, step_size=0.5, temperature=1.0, cooling=0.98, seed=0):
        check_number("step_size", step_size, 0.0, low_open=True)
        check_number("temperature", temperature, 0.0, low_open=True)
        check_number("cooling", cooling, 0.0, 1.0, low_open=True)
        super().__init__(params, dict(step_size=step_size, temperature=temperature,
                                      cooling=cooling), seed)

    def _step(self, closure, record, group):
        if "current" not in record:
            record["current"] = self._gather()
            record["current_value"] = self._value(closure, record["current"])
            record["temperature"] = group["temperature"]
        candidate = record["current"] + group["step_size"] * self._normal()
        value = self._value(closure, candidate)
        rise = value - record["current_value"]
        if rise <= 0 or self._rng.random() < math.exp(-rise / record["temperature"]):
            record["current"], record["current_value"] = candidate, value
        record["temperature"] *= group["cooling"]
        self._assign(record["current"])
        return record["current_value"]


class EvolutionStrategy(DerivativeFree):
    """A (μ/μ, λ) evolution strategy: each step draws λ = ``population`` children
    mean + σ·z, moves the mean to the average of the μ = ``elite`` best of them, and
    shrinks σ by ``decay`` (a fixed schedule instead of CMA-ES's adaptation)."""

    def __init__(self, params, sigma=0.5, population=20, elite=5, decay=0.98, seed=0):
        check_number("sigma", sigma, 0.0, low_open=True)
        _check_count("population", population)
        _check_count("elite", elite)
        if elite > population:
            raise ValueError(f"EvolutionStrategy: elite={elite} must not exceed "
                             f"population={population} (the parents are chosen among the "
                             "children).")
        check_number("decay", decay, 0.0, 1.0, low_open=True)
        super().__init__(params, dict(sigma=sigma, population=population, elite=elite,
                                      decay=decay), seed)

    def _step(self, closure, record, group):
        mean = self._gather()
        sigma = record.setdefault("sigma", group["sigma"])
        children = [mean + sigma * self._normal() for _ in range(group["population"])]
        values = np.array([self._value(closure, c) for c in children])
        order = np.argsort(values, kind="stable")[:group["elite"]]
        self._assign(np.mean([children[i] for i in order], axis=0))
        record["sigma"] = sigma * group["decay"]
        return float(values[order[0]])


def _check_count(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"Invalid {name}: {value!r} ({name} must be a positive integer).")
