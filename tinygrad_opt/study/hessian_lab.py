"""The Hessian lab: curvature of a small network's loss, exactly and by Hessian-vector products.

    lab = hessian_lab.analyze(model, nn.functional.cross_entropy, X, y)
    lab.eigenvalues, lab.condition, lab.n_negative, lab.lanczos, lab.trace_estimate

For the loss L(θ) of a model with n parameters:

* **exact Hessian** H = ∇²L by double backward: the gradient is built with
  ``create_graph=True`` and its Jacobian taken in one batched reverse pass
  (``tg.autograd.batched.hessian_matrix``); n² numbers, so up to a few
  thousand parameters. Its eigenvalues (``numpy.linalg.eigvalsh``) give
  λmax, λmin, the numerical rank (eigenvalues above the float64 cutoff
  n·ε·λmax), the condition number κ = λmax / λmin⁺ -- only where a spectral gap
  makes it independent of the cutoff; a trained network's Hessian usually has a
  continuum of tiny eigenvalues and is then called effectively singular -- and the
  negative eigenvalues: none at a minimum, some at a saddle, which is a critical
  point (‖∇L‖ ≈ 0); away from one only the Hessian's shape is named.
* **Hessian-vector products** H v = ∇(∇L · v) (Pearlmutter's trick: one more
  backward pass through the gradient's graph, which :class:`HVP` builds once
  and reuses), never forming H, for any n:

  - :func:`lanczos` -- k-step Lanczos with full re-orthogonalisation:
    q_{j+1} β_j = H q_j - α_j q_j - β_{j-1} q_{j-1}; the eigenvalues of the
    tridiagonal T_j (the Ritz values) approach the extreme eigenvalues of H
    within a few dozen products, even when λ₁ ≈ λ₂;
  - :func:`power_iteration` -- v ← Hv/‖Hv‖, λ = vᵀHv: the eigenvalue of
    largest magnitude, at rate |λ₂/λ₁|;
  - :func:`hutchinson_trace` -- tr H = E[zᵀHz] for Rademacher z (zᵢ = ±1),
    averaged over samples, with its standard error.

* **Edge of stability** (:func:`edge_of_stability`, Cohen et al. 2021):
  gradient descent with step η is stable on a quadratic iff λmax < 2/η; on
  networks full-batch GD often sharpens λmax up to about 2/η and then hovers there.
  The function trains with full-batch (heavy-ball) GD and records λmax by
  Lanczos every few steps next to the threshold 2/η ((2 + 2β)/η with momentum β);
  :func:`describe_edge_of_stability` turns what was measured into sentences
  (whether and when λmax reached 2/η, how far above it went, how long it stayed
  near it), so a report never claims more than the run showed.

Everything here runs in float64 on a copy of the model (the model passed in is
not touched), on NumPy arrays for the small dense linear algebra.
"""

import copy
import math

import numpy as np

from ..autograd import grad as _grad
from ..autograd.batched import hessian_matrix
from ..backend import to_host, xp_of
from ..op import enable_grad
from ..optim import SGD
from ..tensor import Tensor

__all__ = [
    "HVP",
    "EoSResult",
    "HessianReport",
    "LanczosResult",
    "analyze",
    "describe_edge_of_stability",
    "edge_of_stability",
    "exact_hessian",
    "hutchinson_trace",
    "lanczos",
    "power_iteration",
    "summarize",
]

EXACT_LIMIT = 3000  # parameters up to which analyze() forms the exact Hessian


def _host(array):
    return np.asarray(to_host(array), dtype=np.float64)


def _params_of(model_or_params):
    if hasattr(model_or_params, "parameters"):
        return list(model_or_params.parameters())
    return list(model_or_params)


class HVP:
    """v ↦ H v for the loss ``loss_fn()`` at the current parameters, on flat vectors.

    The loss and its gradient (with ``create_graph=True``) are computed once, in
    the constructor; every call is one backward pass through the gradient's
    graph seeded with v (the vector-Jacobian product of ∇L with v is vᵀH = (Hv)ᵀ).
    ``count`` says how many products were taken; ``loss`` and ``gradient`` hold
    L and ∇L (flat, float64) at the point.
    """

    def __init__(self, loss_fn, params):
        self.params = _params_of(params)
        self.sizes = [p.numel() for p in self.params]
        self.n = sum(self.sizes)
        with enable_grad():
            loss = loss_fn()
            if loss.numel() != 1:
                raise ValueError(f"HVP: the loss must be a scalar, got shape "
                                 f"{tuple(loss.shape)}.")
            grads = _grad([loss.reshape(())], self.params, create_graph=True,
                          allow_unused=True)
        self.loss = float(loss.item())
        self._grads = [g for g in grads]
        self.gradient = np.concatenate([
            np.zeros(n) if g is None else _host(g.data).reshape(-1)
            for g, n in zip(grads, self.sizes)])
        self._live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
        self.count = 0

    def __call__(self, v):
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        if v.shape[0] != self.n:
            raise ValueError(f"HVP: v has {v.shape[0]} entries, the parameters {self.n}.")
        self.count += 1
        out = np.zeros(self.n)
        if not self._live:
            return out
        offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        seeds = []
        for i in self._live:
            p = self.params[i]
            piece = v[offsets[i]:offsets[i + 1]].reshape(p.shape)
            seeds.append(Tensor.constant(xp_of((p.data,)).asarray(piece, dtype=p.dtype)))
        with enable_grad():
            hv = _grad([self._grads[i] for i in self._live], self.params, seeds,
                       retain_graph=True, allow_unused=True)
        for i, h in enumerate(hv):
            if h is not None:
                out[offsets[i]:offsets[i + 1]] = _host(h.data).reshape(-1)
        return out


def exact_hessian(loss_fn, params):
    """The (n, n) Hessian of ``loss_fn()`` with respect to ``params`` (a model or a
    list of tensors), flattened in parameter order, as a float64 NumPy array."""
    params = _params_of(params)
    with enable_grad():
        loss = loss_fn()
        H = hessian_matrix(loss, params)
    return _host(H)


GAP = 1e3       # κ needs an empty band of this many times the zero cutoff above it
GRAD_TOL = 1e-4  # ‖∇L‖ at or below this counts as a critical point


def summarize(eigenvalues, zero_tol=None, grad_norm=None, grad_tol=GRAD_TOL, gap=GAP):
    """Numbers that describe a spectrum, and only the ones it supports.

    * **Zero cutoff** ``zero_tol`` (default n·ε·max|λ|, ε the float64 machine epsilon):
      a symmetric eigensolver in float64 gets each eigenvalue right to about ε·max|λ|
      per dimension, so an eigenvalue below the cutoff is indistinguishable from 0.
      ``rank`` (the numerical rank) counts the eigenvalues above it.
    * **Spectral gap**: κ = λmax/λmin⁺ only means something when it does not depend on
      where the cutoff falls, i.e. when no |λ| lies in the band (cutoff, ``gap``·cutoff]
      (three empty decades by default). Otherwise ``condition`` is NaN and
      ``condition_note`` says "not defined (effectively singular)" with the count of
      eigenvalues in that band (``n_small``).
    * **Curvature** ``kind``: at a critical point (``grad_norm`` <= ``grad_tol``, or no
      gradient given) "minimum" (all eigenvalues positive), "flat minimum" (positive
      semidefinite) or "saddle" (some negative); away from one the Hessian alone is
      described: "positive definite Hessian, not a critical point", "positive
      semidefinite ...", or "indefinite Hessian, not a critical point".
    """
    w = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    scale = float(np.abs(w).max()) if w.size else 0.0
    eps = float(np.finfo(np.float64).eps)
    tol = max(w.size, 1) * eps * scale if zero_tol is None else float(zero_tol)
    negative = int((w < -tol).sum())
    zero = int((np.abs(w) <= tol).sum())
    positive = int((w > tol).sum())
    small = int(((np.abs(w) > tol) & (np.abs(w) <= gap * tol)).sum())
    pos = w[w > tol]
    lam_min_pos = float(pos.min()) if pos.size else math.nan
    lam_max = float(w[-1]) if w.size else math.nan
    if not pos.size:
        condition, note = math.nan, "not defined (no positive eigenvalue)"
    elif small:
        condition = math.nan
        note = (f"not defined (effectively singular: {small} eigenvalues lie between the "
                f"float64 cutoff {tol:.1e} and {gap:g}× it, so λmin⁺ depends on the cutoff)")
    else:
        condition = lam_max / lam_min_pos
        note = f"{condition:.4g}"
    critical = grad_norm is None or grad_norm <= grad_tol
    if critical:
        kind = "saddle" if negative else ("flat minimum" if zero else "minimum")
    else:
        shape = ("indefinite" if negative and positive else
                 "negative semidefinite" if negative else
                 "positive semidefinite" if zero else "positive definite")
        kind = f"{shape} Hessian, not a critical point"
    return {"lam_max": lam_max, "lam_min": float(w[0]) if w.size else math.nan,
            "lam_min_pos": lam_min_pos, "condition": condition, "condition_note": note,
            "rank": negative + positive, "n_small": small,
            "n_negative": negative, "n_zero": zero, "n_positive": positive,
            "trace": float(w.sum()), "zero_tol": tol, "kind": kind, "critical": critical}


class LanczosResult:
    """``eigenvalues`` (the top k Ritz values, largest first), ``ritz`` (all Ritz
    values of the last T, largest first), ``iterations`` (products of H),
    ``residuals`` (the bound β_j |s_{j,i}| ≥ |Hy - θy| for each of the top k) and
    ``vectors`` (the Ritz vectors, n × k)."""

    def __init__(self, eigenvalues, ritz, iterations, residuals, vectors):
        self.eigenvalues, self.ritz = eigenvalues, ritz
        self.iterations, self.residuals, self.vectors = iterations, residuals, vectors

    def __repr__(self):
        return (f"LanczosResult(eigenvalues={np.array2string(self.eigenvalues, precision=6)}, "
                f"iterations={self.iterations})")


def lanczos(matvec, n, k=1, max_iter=None, tol=1e-10, seed=0, which="largest"):
    """The ``k`` algebraically largest (``which="largest"``) or smallest eigenvalues of a
    symmetric operator ``matvec`` on R^n, by Lanczos with full re-orthogonalisation.

    Stops when every wanted Ritz pair has residual bound β_j|s_{j,i}| <= tol·max(1, |θᵢ|)
    (the eigenvalue error is at most that bound, and usually its square over the gap),
    when the Krylov space is invariant (β_j ≈ 0), or after ``max_iter`` products
    (default min(n, max(2k + 20, 60))).
    """
    if n < 1:
        raise ValueError("lanczos: the operator has no entries (n = 0).")
    k = max(1, min(int(k), n))
    m = min(n, max(2 * k + 20, 60)) if max_iter is None else min(n, int(max_iter))
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(n)
    q /= np.linalg.norm(q)
    Q = np.zeros((m, n))
    alphas, betas = [], []
    beta, q_prev = 0.0, np.zeros(n)
    theta = s = None
    for j in range(m):
        Q[j] = q
        w = np.asarray(matvec(q), dtype=np.float64) - beta * q_prev
        alpha = float(q @ w)
        w -= alpha * q
        # full re-orthogonalisation (twice is enough: Kahan / Parlett)
        for _ in range(2):
            w -= Q[:j + 1].T @ (Q[:j + 1] @ w)
        alphas.append(alpha)
        beta = float(np.linalg.norm(w))
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        theta, s = np.linalg.eigh(T)
        order = np.argsort(theta)[::-1] if which == "largest" else np.argsort(theta)
        theta, s = theta[order], s[:, order]
        kk = min(k, j + 1)
        bounds = np.abs(beta * s[-1, :kk])
        invariant = beta <= 1e-12 * max(1.0, float(np.abs(theta).max()))
        if (j + 1 >= k and np.all(bounds <= tol * np.maximum(1.0, np.abs(theta[:kk])))) \
                or invariant or j + 1 == m:
            vectors = Q[:j + 1].T @ s[:, :kk]
            return LanczosResult(theta[:kk].copy(), theta.copy(), j + 1, bounds, vectors)
        betas.append(beta)
        q_prev, q = q, w / beta
    raise AssertionError("unreachable")


def power_iteration(matvec, n, max_iter=1000, tol=1e-10, seed=0):
    """The eigenvalue of largest magnitude: v ← Hv/‖Hv‖ until the Rayleigh quotient
    λ = vᵀHv changes by less than tol·|λ|. Returns (λ, v, iterations)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(n)
    v /= np.linalg.norm(v)
    lam = 0.0
    for it in range(1, max_iter + 1):
        w = np.asarray(matvec(v), dtype=np.float64)
        new = float(v @ w)
        norm = float(np.linalg.norm(w))
        if norm == 0.0:
            return 0.0, v, it
        v = w / norm
        if it > 1 and abs(new - lam) <= tol * max(abs(new), 1e-300):
            return new, v, it
        lam = new
    return lam, v, max_iter


def hutchinson_trace(matvec, n, samples=100, seed=0):
    """Hutchinson's estimate of tr H: the mean of zᵀHz over Rademacher vectors z
    (E[zzᵀ] = I, so E[zᵀHz] = tr H). Returns (estimate, standard error, samples)."""
    if samples < 1:
        raise ValueError(f"hutchinson_trace: samples={samples} must be at least 1.")
    rng = np.random.default_rng(seed)
    values = np.empty(samples)
    for i in range(samples):
        z = rng.integers(0, 2, size=n) * 2.0 - 1.0
        values[i] = z @ np.asarray(matvec(z), dtype=np.float64)
    stderr = float(values.std(ddof=1) / math.sqrt(samples)) if samples > 1 else math.nan
    return float(values.mean()), stderr, values


def _float64_copy(model):
    clone = copy.deepcopy(model)
    return clone.double() if hasattr(clone, "double") else clone


def _tensor64(a):
    if isinstance(a, Tensor):
        return a.double() if a.dtype.kind == "f" else a
    a = np.asarray(a)
    return Tensor(a.astype(np.float64) if a.dtype.kind == "f" else a)


class HessianReport:
    """What :func:`analyze` measured (all numbers float64):

    ``n`` parameters, ``loss``, ``grad_norm``; with the exact Hessian (n <= the
    limit): ``hessian``, ``eigenvalues`` (ascending) and the :func:`summarize` numbers
    as attributes (``lam_max``, ``rank``, ``zero_tol``, ``condition`` (NaN where no
    spectral gap defines it) and ``condition_note`` (the number, or why not),
    ``n_negative``, ``critical``, ``kind``, ...);
    always: ``lanczos`` (top-k by Lanczos), ``power`` (λ of largest |λ| and its
    products), ``trace_estimate`` and ``trace_stderr`` (Hutchinson), ``hvps`` (the
    Hessian-vector products used)."""

    def __init__(self, **values):
        self.__dict__.update(values)

    def rows(self):
        """(name, value) pairs for a summary table."""
        out = [("parameters", self.n), ("loss", self.loss), ("‖∇L‖", self.grad_norm)]
        if self.eigenvalues is not None:
            out += [("λmax (exact)", self.lam_max), ("λmin (exact)", self.lam_min),
                    (f"numerical rank (|λ| > {self.zero_tol:.1e} = n·ε·λmax)",
                     f"{self.rank} of {self.n}"),
                    ("λmin⁺", self.lam_min_pos), ("κ = λmax/λmin⁺", self.condition_note),
                    ("negative eigenvalues", self.n_negative),
                    ("≈ zero eigenvalues", self.n_zero), ("curvature", self.kind),
                    ("trace (exact)", self.trace)]
        lanczos = f"top-{len(self.lanczos.eigenvalues)} by Lanczos ({self.lanczos.iterations} HVPs)"
        out += [(lanczos,
                 ", ".join(f"{v:.6g}" for v in self.lanczos.eigenvalues)),
                (f"|λ|max by power iteration ({self.power[2]} HVPs)", self.power[0]),
                (f"trace by Hutchinson ({self.hutchinson_samples} samples)",
                 f"{self.trace_estimate:.6g} ± {self.trace_stderr:.2g}")]
        return out


def analyze(model, loss_fn, X, y, k=5, samples=100, exact_limit=EXACT_LIMIT, seed=0,
            power_iters=300, grad_tol=GRAD_TOL):
    """Run the lab on ``loss_fn(model(X), y)`` at the model's current parameters.

    The model is copied to float64 (the original stays as it is). Returns a
    :class:`HessianReport`. The exact Hessian is formed when the model has at most
    ``exact_limit`` parameters; the HVP methods always run. The curvature is named
    by :func:`summarize` with the gradient norm (``grad_tol``: a critical point).
    """
    net = _float64_copy(model)
    if hasattr(net, "eval"):
        net.eval()
    X64, y64 = _tensor64(X), _tensor64(y)
    params = [p for p in net.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)

    def loss():
        return loss_fn(net(X64), y64)

    hvp = HVP(loss, params)
    values = {"n": n, "loss": hvp.loss, "grad_norm": float(np.linalg.norm(hvp.gradient)),
              "hessian": None, "eigenvalues": None}
    if n <= exact_limit:
        H = exact_hessian(loss, params)
        w = np.linalg.eigvalsh(H)
        values.update(hessian=H, eigenvalues=w,
                      **summarize(w, grad_norm=values["grad_norm"], grad_tol=grad_tol))
    values["lanczos"] = lanczos(hvp, n, k=k, seed=seed)
    values["power"] = power_iteration(hvp, n, max_iter=power_iters, tol=1e-8, seed=seed)
    est, err, _ = hutchinson_trace(hvp, n, samples=samples, seed=seed)
    values.update(trace_estimate=est, trace_stderr=err, hutchinson_samples=samples,
                  hvps=hvp.count)
    return HessianReport(**values)


class EoSResult:
    """``steps`` (where λmax was measured), ``sharpness`` (λmax there), ``loss``
    (every step's full-batch loss), ``lr``, ``momentum``, ``threshold`` (2/η, or
    (2 + 2β)/η for heavy ball), ``diverged``."""

    def __init__(self, **values):
        self.__dict__.update(values)


def edge_of_stability(model, loss_fn, X, y, lr, steps=200, every=10, momentum=0.0, k_iters=30,
                      seed=0, progress=None):
    """Full-batch gradient descent on a float64 copy of ``model`` with step ``lr``,
    measuring the sharpness λmax(∇²L) by Lanczos (≤ ``k_iters`` HVPs) every
    ``every`` steps (and at the last). Returns an :class:`EoSResult`.

    ``progress(done)`` is called after every step (the command line's bar)."""
    if not lr > 0:
        raise ValueError(f"edge_of_stability: lr={lr} must be positive.")
    net = _float64_copy(model)
    X64, y64 = _tensor64(X), _tensor64(y)
    params = [p for p in net.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    opt = SGD(params, lr=lr, momentum=momentum)

    def loss():
        return loss_fn(net(X64), y64)

    measured, sharpness, losses = [], [], []
    diverged = False
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            hvp = HVP(loss, params)
            if not math.isfinite(hvp.loss):
                diverged = True
                break
            top = lanczos(hvp, n, k=1, max_iter=k_iters, tol=1e-6, seed=seed)
            measured.append(step)
            sharpness.append(float(top.eigenvalues[0]))
        if step == steps:
            break
        opt.zero_grad()
        value = loss()
        if not math.isfinite(float(value.item())):
            diverged = True
            break
        losses.append(float(value.item()))
        value.backward()
        opt.step()
        if progress is not None:
            progress(step + 1)
    return EoSResult(steps=np.asarray(measured), sharpness=np.asarray(sharpness),
                     loss=np.asarray(losses), lr=lr, momentum=momentum,
                     threshold=(2 + 2 * momentum) / lr, diverged=diverged)



HOVER_BAND = 0.1  # "near 2/η" means within ±10 % of it


def describe_edge_of_stability(result, band=HOVER_BAND):
    """Sentences about an :class:`EoSResult`, each computed from its numbers.

    Returns ``(sentences, numbers)``: ``numbers`` holds what the sentences say
    (``start``, ``peak``, ``peak_step``, ``first_above`` (the first measured step with
    λmax >= threshold, or None), ``above`` / ``near`` (measurements after
    ``first_above`` above the threshold / within ±``band`` of it), ``after``
    (measurements from ``first_above`` on), ``loss_rises`` (steps whose loss exceeded
    the previous step's)), so a test can check every word against the run.
    """
    thr, lr = result.threshold, result.lr
    name = "2/η" if not result.momentum else "(2 + 2β)/η"
    s = np.asarray(result.sharpness, dtype=np.float64)
    steps = np.asarray(result.steps)
    losses = np.asarray(result.loss, dtype=np.float64)
    numbers = {"threshold": thr, "start": float(s[0]) if s.size else math.nan,
               "peak": float(s.max()) if s.size else math.nan,
               "peak_step": int(steps[int(s.argmax())]) if s.size else None,
               "first_above": None, "above": 0, "near": 0, "after": 0,
               "loss_rises": int((np.diff(losses) > 0).sum()) if losses.size > 1 else 0,
               "loss_steps": max(len(losses) - 1, 0)}
    out = [(f"Full-batch gradient descent with η = {lr:g}: on a quadratic it is stable only "
            f"while λmax < {name} = {thr:.3g}.")]
    if not s.size:
        return out + ["The loss was not finite at the start; nothing was measured."], numbers
    start = numbers["start"]
    out.append(f"At step 0 the sharpness λmax is {start:.3g}, "
               + (f"{start / thr:.0%} of {name}." if start < thr else
                  f"already {start / thr - 1:.0%} above {name}."))
    crossed = np.nonzero(s >= thr)[0]
    if not crossed.size:
        out.append(f"It never reaches {name} in {int(steps[-1])} steps: its peak is "
                   f"{numbers['peak']:.3g} ({numbers['peak'] / thr:.0%} of {name}) at step "
                   f"{numbers['peak_step']}.")
    else:
        first = int(crossed[0])
        tail = s[first:]
        numbers.update(first_above=int(steps[first]), after=int(tail.size),
                       above=int((tail >= thr).sum()),
                       near=int((np.abs(tail / thr - 1) <= band).sum()))
        if first > 0:
            out.append(f"It rises to {name} by step {int(steps[first])} (progressive "
                       "sharpening).")
        out.append(f"Its peak is {numbers['peak']:.3g}, {numbers['peak'] / thr - 1:.0%} above "
                   f"{name}, at step {numbers['peak_step']}.")
        out.append(f"From step {int(steps[first])} to step {int(steps[-1])}, λmax is above "
                   f"{name} in {numbers['above']} of {tail.size} measurements and within "
                   f"±{band:.0%} of it in {numbers['near']}"
                   + (f"; it ends at {float(s[-1]):.3g} ({float(s[-1]) / thr:.0%} of {name})."))
    if losses.size > 1:
        out.append(f"The training loss goes from {losses[0]:.3g} to {losses[-1]:.3g}"
                   + (f", rising in {numbers['loss_rises']} of {numbers['loss_steps']} steps "
                      "(it no longer falls monotonically)." if numbers["loss_rises"] else
                      ", falling at every step."))
    if result.diverged:
        out.append(f"The loss became non-finite after step {len(losses)}: GD diverged.")
    return out, numbers
