"""Literal transcriptions of the update rules stated in the optimizers'
docstrings, in plain NumPy float64, written for reading rather than speed.
Each ``rule(theta, g, state, t, **hyper)`` returns the new theta; ``state`` is
a dict the rule fills on its own (t = 1 at the first step)."""

import numpy as np


def decay_and_sign(theta, g, lr, weight_decay, maximize, decoupled=False):
    """The preamble every rule shares: g ← -g if maximize; then, if λ ≠ 0, either
    θ ← θ(1 - γλ) (decoupled) or g ← g + λθ (L2 penalty). Returns (θ, g)."""
    if maximize:
        g = -g
    if weight_decay != 0:
        if decoupled:
            theta = theta * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * theta
    return theta, g


def sgd(theta, g, state, t, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
        nesterov=False, maximize=False, momentum_form="pytorch"):
    theta, g = decay_and_sign(theta, g, lr, weight_decay, maximize)
    if momentum_form == "lecture":
        # v <- mu v - lr g ; theta <- theta + v   (Nesterov: + mu (v - v_prev))
        v_prev = state.get("v", np.zeros_like(theta))
        v = momentum * v_prev - lr * g
        state["v"] = v
        if nesterov:
            return theta + v + momentum * (v - v_prev)
        return theta + v
    if momentum != 0:
        if t == 1:
            b = g.copy()
        else:
            b = momentum * state["b"] + (1 - dampening) * g
        state["b"] = b
        g = g + momentum * b if nesterov else b
    return theta - lr * g


def adam(theta, g, state, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
         amsgrad=False, maximize=False, decoupled_weight_decay=False, eps_inside_sqrt=False):
    b1, b2 = betas
    theta, g = decay_and_sign(theta, g, lr, weight_decay, maximize,
                              decoupled_weight_decay)
    m = b1 * state.get("m", 0.0) + (1 - b1) * g
    v = b2 * state.get("v", 0.0) + (1 - b2) * g * g
    state["m"], state["v"] = m, v
    if amsgrad:
        v = np.maximum(state.get("vmax", np.zeros_like(theta)), v)
        state["vmax"] = v
    m_hat = m / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    if eps_inside_sqrt:
        return theta - lr * m_hat / np.sqrt(v_hat + eps)
    return theta - lr * m_hat / (np.sqrt(v_hat) + eps)


def adamw(theta, g, state, t, weight_decay=1e-2, **kw):
    return adam(theta, g, state, t, weight_decay=weight_decay, decoupled_weight_decay=True, **kw)


def adagrad(theta, g, state, t, lr=1e-2, lr_decay=0, weight_decay=0,
            initial_accumulator_value=0, eps=1e-10, maximize=False):
    theta, g = decay_and_sign(theta, g, lr, weight_decay, maximize)
    clr = lr / (1 + (t - 1) * lr_decay)
    s = state.get("s", np.full_like(theta, initial_accumulator_value)) + g * g
    state["s"] = s
    return theta - clr * g / (np.sqrt(s) + eps)


def rmsprop(theta, g, state, t, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
            centered=False, maximize=False, eps_inside_sqrt=False):
    theta, g = decay_and_sign(theta, g, lr, weight_decay, maximize)
    v = alpha * state.get("v", 0.0) + (1 - alpha) * g * g
    state["v"] = v
    if centered:
        gbar = alpha * state.get("gbar", 0.0) + (1 - alpha) * g
        state["gbar"] = gbar
        v = v - gbar * gbar
    d = np.sqrt(v + eps) if eps_inside_sqrt else np.sqrt(v) + eps
    if momentum > 0:
        b = momentum * state.get("b", 0.0) + g / d
        state["b"] = b
        return theta - lr * b
    return theta - lr * g / d


def adadelta(theta, g, state, t, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, maximize=False):
    theta, g = decay_and_sign(theta, g, lr, weight_decay, maximize)
    v = rho * state.get("v", 0.0) + (1 - rho) * g * g
    u = state.get("u", np.zeros_like(theta))
    delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
    state["v"], state["u"] = v, rho * u + (1 - rho) * delta * delta
    return theta - lr * delta


def adamax(theta, g, state, t, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
           maximize=False):
    b1, b2 = betas
    theta, g = decay_and_sign(theta, g, lr, weight_decay, maximize)
    m = b1 * state.get("m", 0.0) + (1 - b1) * g
    u = np.maximum(b2 * state.get("u", np.zeros_like(theta)), np.abs(g) + eps)
    state["m"], state["u"] = m, u
    return theta - lr / (1 - b1 ** t) * m / u


def nadam(theta, g, state, t, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
          momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False):
    b1, b2 = betas
    theta, g = decay_and_sign(theta, g, lr, weight_decay, maximize,
                              decoupled_weight_decay)
    mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    prod = state.get("prod", 1.0) * mu
    state["prod"] = prod
    m = b1 * state.get("m", 0.0) + (1 - b1) * g
    v = b2 * state.get("v", 0.0) + (1 - b2) * g * g
    state["m"], state["v"] = m, v
    d = np.sqrt(v / (1 - b2 ** t)) + eps
    return (theta - lr * (1 - mu) / (1 - prod) * g / d
            - lr * mu_next / (1 - prod * mu_next) * m / d)


RULES = {"SGD": sgd, "Adam": adam, "AdamW": adamw, "Adagrad": adagrad, "RMSprop": rmsprop,
         "Adadelta": adadelta, "Adamax": adamax, "NAdam": nadam}
