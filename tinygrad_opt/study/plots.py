"""Pictures of the study toolkit, with matplotlib (the ``plot`` extra), off screen.

Every function draws on a fresh ``matplotlib.figure.Figure`` with the Agg canvas
(no pyplot, no window, no global backend switch), saves it to ``path`` (PNG
unless the suffix says otherwise) and returns the path:

* races: :func:`race_contour` (contours of f, every path, the line-search trial
  points, start and minima), :func:`race_curves` (f - f* and ‖x - x*‖ per step and
  per evaluation, log scale), :func:`race_gif` (the paths growing, PillowWriter);
* training: :func:`loss_curves` (per-iteration loss, raw and EMA-smoothed),
  :func:`train_val_curves` (train and validation loss and accuracy per epoch:
  where validation turns up while training goes down, the model overfits),
  :func:`decision_boundaries` (2-D classifiers);
* curvature: :func:`spectrum` (eigenvalue histogram with Lanczos' estimates),
  :func:`sharpness` (λmax against 2/η: the edge of stability);
* learning rates: :func:`lr_finder`, :func:`schedule_gallery`;
* sweeps: :func:`sweep_scatter` (score against lr per optimizer);
* gradient checks: :func:`eps_sweep` (the V of finite-difference errors).
"""

import math
import os

import numpy as np

__all__ = [
    "available",
    "decision_boundaries",
    "eps_sweep",
    "loss_curves",
    "lr_finder",
    "race_contour",
    "race_curves",
    "race_gif",
    "schedule_gallery",
    "sharpness",
    "spectrum",
    "sweep_scatter",
    "train_val_curves",
]

FLOOR = 1e-18  # log plots show exact zeros (a solver that lands on x*) here

INSTALL_HINT = "install matplotlib and pillow with: pip install 'tinygrad-opt[plot]'"


def available():
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width=6.4, height=4.8, **kwargs):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"plots need matplotlib: {INSTALL_HINT}.") from None
    fig = Figure(figsize=(width, height), layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=100):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _colors(n):
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# -- races ------------------------------------------------------------------------------------


def _contour(ax, landscape, bounds=None, n=200, image=False):
    """Filled contours of f (log-spaced levels of f - f* for valleys), the minima as
    stars. ``image=True`` draws the colours as one raster image instead of filled
    polygons: much cheaper to redraw, for animations."""
    X, Y, Z = landscape.grid(n, bounds)
    if image:
        (x0, x1), (y0, y1) = bounds or landscape.bounds
        if landscape.log_levels:
            base = landscape.f_min if landscape.f_min is not None else float(np.nanmin(Z))
            shown = np.log10(np.maximum(Z - base, 1e-12))
        else:
            shown = Z
        ax.imshow(shown, extent=(x0, x1, y0, y1), origin="lower", cmap="viridis", alpha=0.55,
                  aspect="auto", interpolation="bilinear")
        levels = 15
        if landscape.log_levels:
            ax.contour(X, Y, shown, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
        else:
            ax.contour(X, Y, Z, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
    elif landscape.log_levels:
        base = landscape.f_min if landscape.f_min is not None else float(np.nanmin(Z))
        gap = np.maximum(Z - base, 1e-12)
        lo, hi = np.log10(max(float(np.nanmin(gap)), 1e-6)), np.log10(float(np.nanmax(gap)))
        levels = np.logspace(lo, hi, 30)
        ax.contourf(X, Y, gap, levels=levels, cmap="viridis", alpha=0.55,
                    norm=_lognorm(levels[0], levels[-1]))
        ax.contour(X, Y, gap, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
    else:
        ax.contourf(X, Y, Z, levels=30, cmap="viridis", alpha=0.55)
        ax.contour(X, Y, Z, levels=30, colors="k", linewidths=0.3, alpha=0.5)
    (x0, x1), (y0, y1) = bounds or landscape.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    for m in landscape.minima:
        ax.plot(*m, marker="*", color="gold", markersize=14, markeredgecolor="k", zorder=5)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def _lognorm(lo, hi):
    from matplotlib.colors import LogNorm

    return LogNorm(vmin=lo, vmax=hi)


def race_contour(race, path, trials=True, title=None):
    """Contours of the landscape with every optimizer's path; line-search trial points
    as small crosses in the path's colour; the start as a white dot, minima as stars."""
    fig = _figure(7.2, 5.6)
    ax = fig.add_subplot()
    _contour(ax, race.landscape)
    colors = _colors(len(race.runs))
    for run, color in zip(race.runs, colors):
        p = run.path
        ax.plot(p[:, 0], p[:, 1], "-o", color=color, markersize=2.5, linewidth=1.4,
                label=f"{run.label} ({run.status})")
        if trials:
            t = run.trial_points()
            if len(t):
                ax.plot(t[:, 0], t[:, 1], "x", color=color, markersize=4, alpha=0.8)
    ax.plot(*race.start, "o", color="white", markeredgecolor="k", markersize=8, zorder=6)
    ax.legend(fontsize=7, loc="best", framealpha=0.8)
    ax.set_title(title or f"{race.landscape.title}: {race.steps} steps"
                 + (" (lr tuned)" if race.fair else ""))
    return _save(fig, path)


def race_curves(race, path):
    """f - f* (or f) and ‖x - x*‖ against the step, and f - f* against evaluations."""
    fig = _figure(11, 3.8)
    axes = fig.subplots(1, 3)
    colors = _colors(len(race.runs))
    has_min = race.landscape.f_min is not None
    for run, color in zip(race.runs, colors):
        values = run.gap if has_min else run.loss
        steps = np.arange(len(values))
        y = np.maximum(values, FLOOR) if has_min else values
        axes[0].plot(steps, y, color=color, label=run.label)
        axes[1].plot(steps, np.maximum(run.dist, FLOOR), color=color)
        axes[2].plot(run.nfev, y, color=color)
    if has_min:
        for ax in (axes[0], axes[2]):
            ax.set_yscale("log")
            ax.set_ylim(bottom=FLOOR / 10)
            ax.axhline(race.tol, color="grey", linestyle=":", linewidth=1)
    axes[1].set_yscale("log")
    axes[1].set_ylim(bottom=FLOOR / 10)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("f - f*" if has_min else "f")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("distance to the nearest minimum")
    axes[2].set_xlabel("function evaluations")
    axes[2].set_ylabel("f - f*" if has_min else "f")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{race.landscape.title}: convergence")
    return _save(fig, path)


def race_gif(race, path, frames=60, fps=12, dpi=72):
    """An animated GIF of the paths growing step by step (matplotlib's PillowWriter).

    Steps are sampled log-spaced when the race is longer than ``frames`` (the early
    steps, where most happens, get more frames). The layout is fixed after the first
    frame, and each frame is drawn once."""
    from matplotlib.animation import PillowWriter

    fig = _figure(6.0, 4.8)
    ax = fig.add_subplot()
    _contour(ax, race.landscape, n=120, image=True)
    colors = _colors(len(race.runs))
    longest = max(run.steps for run in race.runs)
    frames = max(2, min(frames, longest + 1))
    ticks = np.unique(np.round(np.geomspace(1, longest + 1, frames)).astype(int) - 1) \
        if longest > frames else np.arange(longest + 1)
    lines = []
    for run, color in zip(race.runs, colors):
        (line,) = ax.plot([], [], "-o", color=color, markersize=2.5, linewidth=1.3,
                          label=run.label)
        lines.append(line)
    ax.plot(*race.start, "o", color="white", markeredgecolor="k", markersize=7, zorder=6)
    ax.legend(fontsize=7, loc="upper right", framealpha=0.8)
    title = ax.set_title(f"{race.landscape.title}: step 0")
    fig.canvas.draw()
    fig.set_layout_engine("none")  # keep the first frame's layout: no reflow per frame
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, path, dpi):
        for k in ticks:
            for run, line in zip(race.runs, lines):
                p = run.path[:int(k) + 1]
                line.set_data(p[:, 0], p[:, 1])
            title.set_text(f"{race.landscape.title}: step {int(k)}")
            writer.grab_frame()
    return path


# -- training ---------------------------------------------------------------------------------


def loss_curves(histories, path, beta=0.98):
    """Per-iteration loss of each run: raw (faint) and EMA-smoothed with bias correction
    (``History.smoothed(beta)``), on a log scale."""
    fig = _figure(7, 4.2)
    ax = fig.add_subplot()
    for (label, h), color in zip(histories.items(), _colors(len(histories))):
        raw = np.asarray(h.iteration_loss)
        ax.plot(raw, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(h.smoothed(beta), color=color, linewidth=1.8, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss (faint: raw; bold: EMA)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def train_val_curves(histories, path):
    """Train (solid) and validation (dashed) loss and accuracy per epoch."""
    fig = _figure(11, 4)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for (label, h), color in zip(histories.items(), _colors(len(histories))):
        ax_loss.plot(h.epoch, h.train_loss, color=color, label=f"{label} train")
        ax_loss.plot(h.epoch, h.val_loss, "--", color=color, label=f"{label} val")
        if not all(math.isnan(v) for v in h.train_acc):
            ax_acc.plot(h.epoch, h.train_acc, color=color)
            ax_acc.plot(h.epoch, h.val_acc, "--", color=color)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (solid: train, dashed: validation)")
    ax_loss.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def decision_boundaries(models, X, y, path, n=150):
    """For each 2-D classifier: its predicted class over the plane, and the data."""
    from ..tensor import Tensor
    from ..train import predict

    X = np.asarray(X)
    y = np.asarray(y)
    count = len(models)
    cols = min(count, 4)
    rows = -(-count // cols)
    fig = _figure(3.4 * cols, 3.2 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    pad = 0.5
    x0, x1 = X[:, 0].min() - pad, X[:, 0].max() + pad
    y0, y1 = X[:, 1].min() - pad, X[:, 1].max() + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    grid = np.c_[gx.ravel(), gy.ravel()].astype(X.dtype)
    for ax, (label, model) in zip(axes, models.items()):
        out = predict(model, Tensor(grid)).numpy()
        if out.ndim == 2 and out.shape[1] > 1:
            e = np.exp(out - out.max(axis=1, keepdims=True))
            z = (e[:, 1] / e.sum(axis=1)) if out.shape[1] == 2 else out.argmax(axis=1)
        else:
            z = 1 / (1 + np.exp(-out.reshape(-1)))
        ax.contourf(gx, gy, z.reshape(gx.shape), levels=20, cmap="RdBu", alpha=0.6)
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap="RdBu", edgecolors="k", s=10, linewidths=0.4)
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[count:]:
        ax.set_visible(False)
    return _save(fig, path)


# -- curvature -----------------------------------------------------------------------------


def spectrum(report, path):
    """The Hessian's eigenvalues: a histogram on a symmetric-log axis (negative ones in
    red), and the top eigenvalues exact (dots) against Lanczos' (crosses)."""
    fig = _figure(11, 4)
    ax_hist, ax_top = fig.subplots(1, 2)
    w = report.eigenvalues
    if w is not None:
        tol = max(report.zero_tol, 1e-300)
        big = w[np.abs(w) > tol]
        logs = np.log10(np.abs(big)) if big.size else np.zeros(0)
        edges = np.linspace(np.floor(logs.min()) if big.size else 0,
                            np.ceil(logs.max()) if big.size else 1, 41)
        ax_hist.hist(logs[big > 0], bins=edges, color="tab:blue", alpha=0.75, label="λ > 0")
        if (big < 0).any():
            ax_hist.hist(logs[big < 0], bins=edges, color="tab:red", alpha=0.75,
                         label="λ < 0 (by |λ|)")
        ax_hist.set_yscale("log")
        ax_hist.set_xlabel(f"log10 |λ|   ({report.n_zero} with |λ| <= {tol:.1g} left out)")
        ax_hist.set_ylabel("count")
        ax_hist.set_title(f"{report.n} eigenvalues: κ = {report.condition:.3g}, "
                          f"{report.n_negative} negative")
        ax_hist.legend(fontsize=8)
    top = report.lanczos.eigenvalues
    k = np.arange(1, len(top) + 1)
    if w is not None:
        ax_top.plot(k, w[::-1][:len(top)], "o", label="exact (eigvalsh)", markersize=8,
                    fillstyle="none")
    ax_top.plot(k, top, "x", color="tab:orange", label=f"Lanczos ({report.lanczos.iterations}"
                " HVPs)", markersize=8)
    ax_top.set_yscale("log" if (top > 0).all() else "linear")
    ax_top.set_xticks(k)
    ax_top.set_xlabel("rank")
    ax_top.set_ylabel("eigenvalue")
    ax_top.set_title("top eigenvalues")
    ax_top.legend(fontsize=8)
    return _save(fig, path)


def sharpness(result, path):
    """λmax of the Hessian during full-batch GD against the stability threshold 2/η,
    with the loss below: the edge of stability."""
    fig = _figure(7, 5.2)
    ax_s, ax_l = fig.subplots(2, 1, sharex=True)
    ax_s.plot(result.steps, result.sharpness, "o-", markersize=3, label="λmax (Lanczos)")
    label = "2/η" if not result.momentum else f"(2+2β)/η, β = {result.momentum:g}"
    ax_s.axhline(result.threshold, color="tab:red", linestyle="--", label=label)
    ax_s.set_ylabel("sharpness λmax")
    ax_s.legend(fontsize=8)
    ax_s.set_title(f"full-batch GD, η = {result.lr:g}: edge of stability")
    ax_l.plot(np.arange(len(result.loss)), result.loss, color="tab:green")
    ax_l.set_yscale("log")
    ax_l.set_xlabel("step")
    ax_l.set_ylabel("training loss")
    return _save(fig, path)


# -- learning rates ----------------------------------------------------------------------------


def lr_finder(result, path):
    """The range test: raw and smoothed loss against lr (log), the suggestion marked."""
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    ax.plot(result.lrs, result.losses, color="tab:blue", alpha=0.3, label="loss")
    ax.plot(result.lrs, result.smoothed, color="tab:blue", label="smoothed")
    if math.isfinite(result.suggestion):
        ax.axvline(result.suggestion, color="tab:red", linestyle="--",
                   label=f"steepest: {result.suggestion:.2g}")
    if math.isfinite(result.min_loss_lr):
        ax.axvline(result.min_loss_lr, color="tab:green", linestyle=":",
                   label=f"min / 10: {result.min_loss_lr:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8)
    ax.set_title("learning-rate range test")
    return _save(fig, path)


def schedule_gallery(curves, path):
    """One small panel per schedule: lr against epoch."""
    count = len(curves)
    cols = 4
    rows = -(-count // cols)
    fig = _figure(3.2 * cols, 2.4 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax, (name, lrs) in zip(axes, curves.items()):
        ax.plot(np.arange(len(lrs)), lrs, color="tab:purple")
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
    for ax in axes[count:]:
        ax.set_visible(False)
    fig.suptitle("optim.lr_scheduler: the learning rate per epoch")
    return _save(fig, path)


# -- sweeps ---------------------------------------------------------------------------------


def sweep_scatter(result, path):
    """Validation score against lr (log) for each optimizer; diverged trials as crosses
    on the top edge."""
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    by_opt = {}
    for r in result.records:
        by_opt.setdefault(str(r["config"].get("optimizer", "?")), []).append(r)
    ok_scores = [r["score"] for r in result.records if r["status"] == "ok"]
    top = max(ok_scores) if ok_scores else 1.0
    for (name, records), color in zip(by_opt.items(), _colors(len(by_opt))):
        ok = [r for r in records if r["status"] == "ok" and r["config"].get("lr")]
        bad = [r for r in records if r["status"] != "ok" and r["config"].get("lr")]
        if ok:
            ax.plot([r["config"]["lr"] for r in ok], [r["score"] for r in ok], "o",
                    color=color, label=name)
        if bad:
            ax.plot([r["config"]["lr"] for r in bad], [top] * len(bad), "x", color=color)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("validation loss (× = diverged)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def eps_sweep(eps_values, errors, path):
    """The finite-difference error against the step h, per dtype (log-log), with
    ε^(1/3) marked: truncation error on the right, round-off on the left."""
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    for (dtype, values), color in zip(errors.items(), _colors(len(errors))):
        values = np.asarray(values, dtype=np.float64)
        ax.loglog(eps_values, np.where(np.isfinite(values), values, np.nan), "o-", color=color,
                  label=dtype)
        ax.axvline(np.finfo(dtype).eps ** (1 / 3), linestyle=":", color=color)
    ax.set_xlabel("finite-difference step h (dotted: ε^(1/3))")
    ax.set_ylabel("max relative error")
    ax.set_title("truncation (right) against round-off (left)")
    ax.legend()
    return _save(fig, path)
