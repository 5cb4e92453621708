"""Levenberg's method: the lecture's damped Gauss-Newton, (JᵀJ + λI) δ = -Jᵀr."""

from .gauss_newton import LevenbergMarquardt


class Levenberg(LevenbergMarquardt):
    r"""Levenberg (1944): Gauss-Newton with the damping λI added to JᵀJ,

        (JᵀJ + λ I) δ = -Jᵀr,    θ ← θ + δ,

    a Gauss-Newton step when λ → 0 and a short gradient-descent step -Jᵀr/λ
    when λ is large. It is :class:`LevenbergMarquardt` with
    ``damping="levenberg"`` (D = I); Marquardt's D² = diag(JᵀJ) scales each
    direction instead, which is why LevenbergMarquardt is the one to use on badly
    scaled problems.

    Every other argument is LevenbergMarquardt's, with its defaults (how λ moves:
    ``lambda_update``; the lecture's rule "λ ÷ 10 after a success, λ × 10 after a
    failure" is ``lambda_update="multiplicative"``). The closure returns the
    residual vector r, as for :class:`GaussNewton`.

    Example:
        >>> import tinygrad_opt as tg
        >>> b = tg.tensor([1.0, 1.0], dtype="float64", requires_grad=True)
        >>> x = tg.tensor([0.0, 1.0, 2.0], dtype="float64")
        >>> y = tg.tensor([1.0, 3.0, 5.0], dtype="float64")
        >>> opt = tg.optim.Levenberg([b], lambda_update="multiplicative")
        >>> for _ in range(20):
        ...     _ = opt.step(lambda: b[0] + b[1] * x - y)
        >>> [round(v, 6) for v in b.numpy().tolist()]
        [1.0, 2.0]
    """

    def __init__(self, params, **kwargs):
        if "damping" in kwargs:
            raise TypeError("Levenberg always uses damping='levenberg' (λI); for Marquardt's "
                            "diag(JᵀJ) scaling use optim.LevenbergMarquardt.")
        super().__init__(params, damping="levenberg", **kwargs)
