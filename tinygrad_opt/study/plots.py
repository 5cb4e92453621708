"""Pictures of the study toolkit, with matplotlib (the ``plot`` extra), off screen.

Every function draws on a fresh ``matplotlib.figure.Figure`` with the Agg canvas
(no pyplot, no window, no global backend switch), saves it to ``path`` (PNG
unless the suffix says otherwise) and returns the path:

* races: :func:`race_contour` (contours of f, every path in its own colour, line
  style and marker, the line-search trial points, start and minima; the frame grows
  for paths that leave it a little, and marks where one leaves for good),
  :func:`race_curves` (f - f* and ‖x - x*‖ per step and per evaluation, log scale),
  :func:`race_gif` (the paths growing, ≥ 800 px wide, one palette for every frame);
* training: :func:`loss_curves` (per-iteration loss, raw and EMA-smoothed),
  :func:`train_val_curves` (train and validation loss and accuracy per epoch:
  where validation turns up while training goes down, the model overfits),
  :func:`decision_boundaries` (2-D classifiers: colour key, class legend, the
  misclassified points circled);
* curvature: :func:`spectrum` (histogram of log10|λ| with the zero cutoff, and
  Lanczos' estimates), :func:`sharpness` (λmax against 2/η: the edge of stability);
* learning rates: :func:`lr_finder`, :func:`schedule_gallery`;
* sweeps: :func:`sweep_scatter` (score against lr per optimizer);
* gradient checks: :func:`eps_sweep` (the V of finite-difference errors);
* 1-D races: :func:`landscape_1d` (the curve with the iterates on it, diverged runs
  crossed out); linear solvers: :func:`solver_race` (residual curves, direct solves).
"""

import math
import os

import numpy as np

from ..tensor import Tensor
from ..train import predict

__all__ = [
    "available",
    "decision_boundaries",
    "eps_sweep",
    "landscape_1d",
    "loss_curves",
    "lr_finder",
    "race_contour",
    "race_curves",
    "race_gif",
    "schedule_gallery",
    "sharpness",
    "solver_race",
    "spectrum",
    "sweep_scatter",
    "train_val_curves",
]

FLOOR = 1e-18  # log plots show exact zeros (a solver that lands on x*) here

INSTALL_HINT = "install matplotlib and pillow with: pip install 'tinygrad-opt[plot]'"


def available():
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401 -- optional (the plot extra), as below
    except ImportError:
        return False
    return True


def _figure(width=6.4, height=4.8, **kwargs):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # optional (the plot extra)
        from matplotlib.figure import Figure  # optional (the plot extra)
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


def _capital(text):
    """A title with its first letter capitalised."""
    return text[:1].upper() + text[1:]


def _colors(n):
    import matplotlib  # optional (the plot extra)

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
        ax.plot(*m, marker="*", color="gold", markersize=14, markeredgecolor="k", zorder=45)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def _lognorm(lo, hi):
    from matplotlib.colors import LogNorm  # optional (the plot extra)

    return LogNorm(vmin=lo, vmax=hi)


_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h", "<", ">")


def _run_styles(n):
    """(colour, line style, marker) per run: colour *and* shape differ, so a path drawn
    over another stays identifiable."""
    return [(color, _LINESTYLES[i % len(_LINESTYLES)], _MARKERS[i % len(_MARKERS)])
            for i, color in enumerate(_colors(n))]


def _frame(landscape, paths, grow=0.5):
    """((x0, x1), (y0, y1)): the landscape's bounds, grown to take in every iterate when
    that adds at most ``grow`` × the width (height) on a side; a path that goes further
    is clipped, and :func:`_exits` marks where it leaves."""
    (x0, x1), (y0, y1) = landscape.bounds
    points = np.concatenate([p for p in paths if len(p)]) if paths else np.zeros((0, 2))
    points = points[np.isfinite(points).all(axis=1)]
    if not len(points):
        return (x0, x1), (y0, y1)
    out = []
    for (lo, hi), values in (((x0, x1), points[:, 0]), ((y0, y1), points[:, 1])):
        span = hi - lo
        want_lo, want_hi = min(lo, values.min()), max(hi, values.max())
        pad = 0.03 * span  # a grown side gets a margin so the end point is not on the edge
        new_lo = lo if want_lo >= lo else (want_lo - pad if want_lo - pad >= lo - grow * span
                                           else lo)
        new_hi = hi if want_hi <= hi else (want_hi + pad if want_hi + pad <= hi + grow * span
                                           else hi)
        out.append((float(new_lo), float(new_hi)))
    return tuple(out)


def _exits(path, frame):
    """The first step whose iterate lies outside ``frame`` and the point where the path
    crosses the frame's edge on its way there: (step, (x, y), direction), or None."""
    (x0, x1), (y0, y1) = frame
    inside = ((path[:, 0] >= x0) & (path[:, 0] <= x1) & (path[:, 1] >= y0)
              & (path[:, 1] <= y1))
    outside = np.nonzero(~inside)[0]
    if not len(outside) or outside[0] == 0:
        return None
    k = int(outside[0])
    a, b = path[k - 1], path[k]
    d = b - a
    if not np.isfinite(d).all():
        return k, tuple(a), (0.0, 0.0)
    t = 1.0  # the largest fraction of the segment that stays inside the frame
    for axis, (lo, hi) in enumerate(frame):
        if d[axis] > 0 and b[axis] > hi:
            t = min(t, (hi - a[axis]) / d[axis])
        elif d[axis] < 0 and b[axis] < lo:
            t = min(t, (lo - a[axis]) / d[axis])
    return k, tuple(a + t * d), tuple(d)


def _draw_paths(ax, race, frame, trials=True):
    """Every run's path (longest first, so short second-order paths lie on top), its
    line-search trials, and an arrowhead where a path leaves the frame; returns the
    legend handles."""
    from matplotlib.lines import Line2D  # optional (the plot extra)

    styles = _run_styles(len(race.runs))
    order = sorted(range(len(race.runs)), key=lambda i: -len(race.runs[i].path))
    handles = [None] * len(race.runs)
    for depth, i in enumerate(order):
        run, (color, style, marker) = race.runs[i], styles[i]
        p = run.path
        every = max(1, len(p) // 40)  # markers stay countable on long paths
        # lower paths are drawn wider: where two coincide, both stay visible
        width = 3.0 - 1.8 * depth / max(len(order) - 1, 1)
        ax.plot(p[:, 0], p[:, 1], linestyle=style, marker=marker, markevery=every,
                color=color, markersize=4, linewidth=width, zorder=3 + depth, clip_on=True)
        if trials:
            t = run.trial_points()
            if len(t):
                ax.plot(t[:, 0], t[:, 1], "x", color=color, markersize=4, alpha=0.8,
                        zorder=3 + depth)
        label = f"{run.label} ({run.status})"
        exit_ = _exits(p, frame)
        if exit_ is not None:
            k, point, (dx, dy) = exit_
            angle = math.degrees(math.atan2(dy, dx)) - 90 if (dx or dy) else 0.0
            ax.plot(*point, marker=(3, 0, angle), color=color, markersize=13,
                    markeredgecolor="k", zorder=40, clip_on=False)
            label += f", leaves the frame at step {k} (▲)"
        handles[i] = Line2D([], [], color=color, linestyle=style, marker=marker,
                            markersize=5, linewidth=1.6, label=label)
    return handles


def race_contour(race, path, trials=True, title=None):
    """Contours of the landscape with every optimizer's path (a colour, line style and
    marker each; the legend beside the picture, never over the valley); line-search
    trial points as small crosses in the path's colour; the start as a white dot, minima
    as stars. The frame grows to take in paths that leave it a little; a path that goes
    further is clipped and an arrowhead marks where it leaves."""
    frame = _frame(race.landscape, [r.path for r in race.runs])
    fig = _figure(10.5, 5.6)
    ax = fig.add_subplot()
    _contour(ax, race.landscape, bounds=frame)
    handles = _draw_paths(ax, race, frame, trials)
    ax.plot(*race.start, "o", color="white", markeredgecolor="k", markersize=8, zorder=50)
    fig.legend(handles=handles, loc="outside right upper", fontsize=8,
               title="optimizer (status)", title_fontsize=8)
    ax.set_title(title or f"{_capital(race.landscape.title)}: {race.steps} steps"
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
    fig.suptitle(f"{_capital(race.landscape.title)}: convergence")
    return _save(fig, path)


def race_gif(race, path, frames=60, fps=12, dpi=80, width=10.5):
    """An animated GIF of the paths growing step by step, ``width`` inches × ``dpi``
    wide (840 px by default), the legend beside the picture.

    Steps are sampled log-spaced when the race is longer than ``frames`` (the early
    steps, where most happens, get more frames). The layout is fixed after the first
    frame, each frame is drawn once, and every frame is mapped to one palette (made
    from the finished picture), so a path keeps its colour from frame to frame."""
    from PIL import Image  # optional (the plot extra)

    frame_box = _frame(race.landscape, [r.path for r in race.runs])
    fig = _figure(width, width * 0.53)
    ax = fig.add_subplot()
    _contour(ax, race.landscape, bounds=frame_box, n=120, image=True)
    styles = _run_styles(len(race.runs))
    longest = max(run.steps for run in race.runs)
    frames = max(2, min(frames, longest + 1))
    ticks = np.unique(np.round(np.geomspace(1, longest + 1, frames)).astype(int) - 1) \
        if longest > frames else np.arange(longest + 1)
    lines = []
    for run, (color, style, marker) in zip(race.runs, styles):
        (line,) = ax.plot([], [], linestyle=style, marker=marker, color=color, markersize=4,
                          linewidth=1.6, label=run.label, animated=True)
        lines.append(line)
    (start,) = ax.plot(*race.start, "o", color="white", markeredgecolor="k", markersize=7,
                       zorder=6, animated=True)
    fig.legend(handles=lines, loc="outside right upper", fontsize=8)
    name = _capital(race.landscape.title)
    title = ax.set_title(f"{name}: step {longest}")  # sizes the layout
    fig.set_dpi(dpi)
    fig.canvas.draw()
    fig.set_layout_engine("none")  # keep the first frame's layout: no reflow per frame
    title.set_animated(True)
    fig.canvas.draw()
    # blitting: the contours are drawn once; each frame restores them and draws only the
    # paths, the start and the title on top
    background = fig.canvas.copy_from_bbox(fig.bbox)
    images = []
    for k in ticks:
        fig.canvas.restore_region(background)
        for run, line in zip(race.runs, lines):
            p = run.path[:int(k) + 1]
            line.set_data(p[:, 0], p[:, 1])
            ax.draw_artist(line)
        ax.draw_artist(start)
        title.set_text(f"{name}: step {int(k)}")
        ax.draw_artist(title)
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()))
    palette = images[-1].quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    frames_p = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    frames_p[0].save(path, save_all=True, append_images=frames_p[1:], loop=0,
                     duration=int(1000 / fps), optimize=False)
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
    fig = _figure(12, 4)
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
    fig.legend(handles=ax_loss.get_lines(), loc="outside right upper", fontsize=7)
    return _save(fig, path)


def decision_boundaries(models, X, y, path, n=150):
    """For each 2-D classifier: what it predicts over the plane, with a colour key, and
    the data -- one marker shape per class (the class legend), misclassified points
    circled in black and counted in the panel's title.

    Two classes: the predicted probability of class 1 (a diverging map, 0.5 at the
    boundary, drawn as a black line). More classes: the predicted class."""
    from matplotlib.colors import BoundaryNorm, ListedColormap  # optional (the plot extra)
    from matplotlib.lines import Line2D  # optional (the plot extra)


    X = np.asarray(X)
    y = np.asarray(y).reshape(-1)
    classes = int(y.max()) + 1
    count = len(models)
    cols = min(count, 4)
    rows = -(-count // cols)
    fig = _figure(3.4 * cols + 1.4, 3.3 * rows + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    pad = 0.5
    x0, x1 = X[:, 0].min() - pad, X[:, 0].max() + pad
    y0, y1 = X[:, 1].min() - pad, X[:, 1].max() + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    grid = np.c_[gx.ravel(), gy.ravel()].astype(X.dtype)
    point_colors = _colors(max(classes, 2)) if classes > 2 else ["tab:red", "tab:blue"]
    shapes = _MARKERS
    binary = classes <= 2
    if binary:
        cmap, norm, levels = "RdBu", None, np.linspace(0, 1, 11)
    else:
        cmap = ListedColormap([point_colors[c] for c in range(classes)])
        norm = BoundaryNorm(np.arange(classes + 1) - 0.5, classes)
        levels = np.arange(classes + 1) - 0.5
    filled = None
    for ax, (label, model) in zip(axes, models.items()):
        out = np.asarray(predict(model, Tensor(grid)).numpy(), dtype=np.float64)
        scores = np.asarray(predict(model, Tensor(X.astype(grid.dtype))).numpy(),
                            dtype=np.float64)
        if out.ndim == 2 and out.shape[1] > 1:
            e = np.exp(out - out.max(axis=1, keepdims=True))
            z = e[:, 1] / e.sum(axis=1) if binary else out.argmax(axis=1)
            predicted = scores.argmax(axis=1)
        else:
            z = 1 / (1 + np.exp(-out.reshape(-1)))
            predicted = (scores.reshape(-1) > 0).astype(int)
        filled = ax.contourf(gx, gy, z.reshape(gx.shape), levels=levels, cmap=cmap, norm=norm,
                             alpha=0.45)
        if binary:
            ax.contour(gx, gy, z.reshape(gx.shape), levels=[0.5], colors="k", linewidths=1.2)
        wrong = predicted != y
        for c in range(classes):
            mine = y == c
            ax.scatter(X[mine, 0], X[mine, 1], color=point_colors[c], marker=shapes[c],
                       edgecolors="white", s=16, linewidths=0.4, zorder=3)
        ax.scatter(X[wrong, 0], X[wrong, 1], facecolors="none", edgecolors="k", s=70,
                   linewidths=1.4, zorder=4)
        ax.set_title(f"{label}\n{int(wrong.sum())} of {len(y)} misclassified", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
    for ax in axes[count:]:
        ax.set_visible(False)
    handles = [Line2D([], [], linestyle="none", marker=shapes[c], color=point_colors[c],
                      markersize=7, label=f"class {c}") for c in range(classes)]
    handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none",
                          markeredgecolor="k", markersize=10, label="misclassified"))
    if binary:
        handles.append(Line2D([], [], color="k", linewidth=1.2, label="boundary (p = 0.5)"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="data")
    if filled is not None:
        bar = fig.colorbar(filled, ax=axes[:count].tolist(), location="right", shrink=0.8,
                           pad=0.02)
        if binary:
            bar.set_label("predicted probability of class 1")
        else:
            bar.set_ticks(np.arange(classes))
            bar.set_label("predicted class")
    return _save(fig, path)


# -- curvature -----------------------------------------------------------------------------


def spectrum(report, path):
    """The Hessian's eigenvalues: a histogram of log10|λ| (λ > 0 in blue, λ < 0 in red,
    by |λ|) with the float64 zero cutoff n·ε·λmax marked (eigenvalues below it are
    counted, not drawn), and the top eigenvalues exact (circles) against Lanczos'
    (crosses)."""
    fig = _figure(11, 4)
    ax_hist, ax_top = fig.subplots(1, 2)
    w = report.eigenvalues
    if w is not None:
        tol = max(report.zero_tol, 1e-300)
        big = w[np.abs(w) > tol]
        logs = np.log10(np.abs(big)) if big.size else np.zeros(0)
        lo = min(np.floor(logs.min()) if big.size else 0, np.floor(np.log10(tol)))
        edges = np.linspace(lo, np.ceil(logs.max()) if big.size else 1, 41)
        ax_hist.hist(logs[big > 0], bins=edges, color="tab:blue", alpha=0.75, label="λ > 0")
        if (big < 0).any():
            ax_hist.hist(logs[big < 0], bins=edges, color="tab:red", alpha=0.75,
                         label="λ < 0 (by |λ|)")
        ax_hist.axvline(np.log10(tol), color="k", linestyle="--", linewidth=1.2,
                        label=f"zero cutoff n·ε·λmax = {tol:.1e}")
        ax_hist.set_yscale("log")
        ax_hist.set_xlabel(f"log10 |λ|   ({report.n_zero} eigenvalues with |λ| ≤ cutoff "
                           "not drawn)")
        ax_hist.set_ylabel("number of eigenvalues")
        kappa = (f"κ = {report.condition:.3g}" if math.isfinite(report.condition)
                 else "κ not defined (effectively singular)")
        ax_hist.set_title(f"Histogram of log10|λ| of the {report.n} eigenvalues\n"
                          f"numerical rank {report.rank}, {kappa}, {report.n_negative} "
                          "negative", fontsize=9)
        ax_hist.legend(fontsize=8)
    top = report.lanczos.eigenvalues
    k = np.arange(1, len(top) + 1)
    if w is not None:
        ax_top.plot(k, w[::-1][:len(top)], "o", label="exact (eigvalsh)", markersize=9,
                    fillstyle="none")
    ax_top.plot(k, top, "x", color="tab:orange", label=f"Lanczos ({report.lanczos.iterations}"
                " HVPs)", markersize=8)
    ax_top.set_yscale("log" if (top > 0).all() else "linear")
    ax_top.set_xticks(k)
    ax_top.set_xlabel("rank")
    ax_top.set_ylabel("eigenvalue")
    ax_top.set_title(f"Top {len(top)} eigenvalues", fontsize=9)
    ax_top.legend(fontsize=8)
    return _save(fig, path)


def sharpness(result, path):
    """λmax of the Hessian during full-batch GD against the stability threshold 2/η
    (a thick red line, the region above it shaded and labelled), with the loss below:
    the edge of stability. The y range always shows the threshold with room around it."""
    fig = _figure(8, 5.6)
    ax_s, ax_l = fig.subplots(2, 1, sharex=True)
    thr = result.threshold
    name = "2/η" if not result.momentum else f"(2+2β)/η, β = {result.momentum:g}"
    top = max(float(np.max(result.sharpness)) if len(result.sharpness) else thr, thr) * 1.15
    ax_s.axhspan(thr, top, color="tab:red", alpha=0.08, zorder=0)
    ax_s.axhline(thr, color="tab:red", linestyle="--", linewidth=2.2, zorder=2,
                 label=f"{name} = {thr:.3g}")
    ax_s.plot(result.steps, result.sharpness, "o-", color="tab:blue", markersize=3,
              linewidth=1.4, zorder=3, label="λmax (Lanczos)")
    ax_s.text(0.01, top * 0.97, f"above {name}: unstable on a quadratic", color="tab:red",
              fontsize=8, va="top", ha="left", transform=ax_s.get_yaxis_transform())
    ax_s.set_ylim(0, top)
    ax_s.set_ylabel("sharpness λmax")
    ax_s.legend(fontsize=8, loc="lower right")
    ax_s.set_title(f"Full-batch GD with η = {result.lr:g}: sharpness against {name}")
    ax_l.plot(np.arange(len(result.loss)), result.loss, color="tab:green")
    ax_l.set_yscale("log")
    ax_l.set_xlabel("step")
    ax_l.set_ylabel("training loss")
    return _save(fig, path)


# -- learning rates ----------------------------------------------------------------------------


def lr_finder(result, path):
    """The range test: raw (faint) and smoothed loss against lr (log), on a y range
    that shows where the loss falls (from a little below the lowest smoothed loss to a
    little above the first: the divergence at the end is cut, and said so); the two
    suggestions as differently coloured and dashed lines with a marker on the curve
    each. Without a suggestion the title says why."""
    fig = _figure(7.5, 4.5)
    ax = fig.add_subplot()
    lrs, smoothed = np.asarray(result.lrs), np.asarray(result.smoothed)
    ax.plot(lrs, result.losses, color="tab:blue", alpha=0.25, linewidth=0.9,
            label="loss per batch")
    ax.plot(lrs, smoothed, color="tab:blue", linewidth=2, label="smoothed (EMA)")
    # the two lines often fall close together: one spans the upper half, the other the
    # lower half, so both stay visible whatever their values
    marks = (("suggestion", "steepest descent", "tab:red", "--", 1, (0.5, 1.0)),
             ("min_loss_lr", "minimum / 10", "tab:purple", ":", 10, (0.0, 0.5)))
    for attr, what, color, style, factor, (y_lo, y_hi) in marks:
        lr = getattr(result, attr)
        if math.isfinite(lr):
            ax.axvline(lr, y_lo, y_hi, color=color, linestyle=style, linewidth=2.2,
                       label=f"{what}: lr = {lr:.2g}")
            at = int(np.argmin(np.abs(np.log(lrs) - math.log(lr * factor))))
            ax.plot(lrs[at], smoothed[at], "o", color=color, markersize=8, zorder=5,
                    markeredgecolor="k")
    if len(smoothed):
        finite = smoothed[np.isfinite(smoothed)]
        low, high = float(finite.min()), float(max(finite[0], finite.min()))
        span = max(high - low, 1e-12)
        ax.set_ylim(low - 0.15 * span, high + 0.35 * span)
        if np.nanmax(np.asarray(result.losses)) > high + 0.35 * span:
            ax.text(0.99, 0.98, "losses above the top are cut", transform=ax.transAxes,
                    ha="right", va="top", fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Learning-rate range test" if result.message is None else
                 "Learning-rate range test: no suggestion (see the message)", fontsize=10)
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
    ax.set_title("Sweep: validation loss of every trial")
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
    ax.set_title("Finite differences: truncation error (right) against round-off (left)")
    ax.legend()
    return _save(fig, path)


# -- 1-D landscapes and linear solvers (issue 13) ----------------------------------------------


def landscape_1d(race, path, title=None):
    """A 1-D race drawn as the lecture's small/large learning-rate pictures: the curve
    f(x) over the landscape's bounds and each run's iterates (x_k, f(x_k)) on it, joined
    in order; the start is a black dot, the global minimum a star, and a run that
    diverged ends with a cross at the last iterate inside the frame ("diverged" in the
    legend, as in the tables)."""
    landscape = race.landscape
    if landscape.dim != 1:
        raise ValueError(f"landscape_1d draws 1-D races; {landscape.name} has "
                         f"{landscape.dim} variables (use race_contour).")
    (x0, x1), = landscape.bounds
    grid = np.linspace(x0, x1, 400)
    curve = landscape.value(grid)
    fig = _figure(7.5, 4.8)
    ax = fig.subplots()
    ax.plot(grid, curve, color="k", linewidth=1.5, zorder=1)
    styles = _run_styles(len(race.runs))
    with np.errstate(all="ignore"):
        for run, (color, linestyle, marker) in zip(race.runs, styles):
            xs = run.path[:, 0]
            inside = np.isfinite(xs) & (xs >= x0) & (xs <= x1)
            last = int(np.nonzero(inside)[0][-1]) if inside.any() else 0
            shown = xs[:last + 1]
            ax.plot(shown, landscape.value(shown), color=color, linestyle=linestyle,
                    marker=marker, markersize=4, linewidth=0.8, alpha=0.85, zorder=3,
                    label=f"{run.label} ({run.status})")
            if run.status == "diverged":
                ax.plot(shown[-1], landscape.value(shown[-1:])[0], marker="x", color=color,
                        markersize=14, markeredgewidth=3, zorder=5)
    start = race.start[0]
    ax.plot(start, landscape.value([start])[0], "o", color="k", markersize=7, zorder=6)
    for (m,) in landscape.minima:
        ax.plot(m, landscape.value([m])[0], marker="*", color="gold", markersize=14,
                markeredgecolor="k", zorder=6)
    span = float(np.nanmax(curve) - np.nanmin(curve))
    ax.set_ylim(float(np.nanmin(curve)) - 0.05 * span, float(np.nanmax(curve)) + 0.05 * span)
    ax.set_xlim(x0, x1)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.legend(fontsize=8)
    ax.set_title(title or race.caption(), fontsize=9)
    return _save(fig, path)


def solver_race(result, path):
    """Relative residual ‖b - A x_k‖/‖b‖ against the iteration for each iterative solver
    of a :mod:`~tinygrad_opt.study.solver_race` result (log scale, the tolerance dotted),
    and each direct solver as one marker at iteration 1, where its single factorisation
    lands."""
    fig = _figure(7.5, 4.8)
    ax = fig.subplots()
    styles = _run_styles(len(result.runs))
    for run, (color, linestyle, marker) in zip(result.runs, styles):
        residuals = np.maximum(np.asarray(run.residuals, dtype=np.float64), FLOOR)
        status = "" if run.converged else " (diverged)" if run.message.startswith(
            "diverged") else " (not converged)"
        if run.direct:
            ax.plot([1], residuals, marker=marker, color=color, markersize=10, linestyle="",
                    label=f"{run.method} (direct){status}")
        else:
            ax.plot(np.arange(len(residuals)), residuals, color=color, linestyle=linestyle,
                    label=f"{run.method}: {run.niter} iterations{status}")
    ax.axhline(result.tol, color="grey", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(left=0)
    ax.set_xlabel("iteration (products with A)")
    ax.set_ylabel("‖b - A x‖ / ‖b‖")
    ax.legend(fontsize=8)
    ax.set_title(f"linear solvers on A x = b (n = {result.n})")
    return _save(fig, path)
