"""The pictures say what they show: paths leaving the frame are marked, legends sit beside the
plot, the GIF is wide with one palette, the LR-test lines differ, misclassified points and the
colour key are there, 2/η is inside the picture."""

import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import tinygrad_opt as tg
from tinygrad_opt import nn
from tinygrad_opt.study import hessian_lab, lr_finder, plots, race


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions draw (and still save)."""
    drawn = []
    save = plots._save

    def keep(fig, path, dpi=100):
        drawn.append(fig)
        return save(fig, path, dpi)

    monkeypatch.setattr(plots, "_save", keep)
    return drawn


def _overlap(a, b):
    return not (a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0)


def test_a_path_that_leaves_the_frame_is_marked_and_the_legend_is_outside(tmp_path, figures):
    result = race.race("rosenbrock", ["newton", "bfgs", "adam"], steps=30)
    newton = result["newton"].path
    frame = plots._frame(result.landscape, [r.path for r in result.runs])
    (x0, x1), (y0, y1) = frame
    outside = (newton[:, 0] < x0) | (newton[:, 0] > x1) | (newton[:, 1] < y0) | \
        (newton[:, 1] > y1)
    assert outside.any(), "Newton's second iterate is far outside Rosenbrock's picture"
    step, point, _ = plots._exits(newton, frame)
    assert step == int(np.argmax(outside))
    on_edge = (math.isclose(point[0], x0) or math.isclose(point[0], x1)
               or math.isclose(point[1], y0) or math.isclose(point[1], y1))
    assert on_edge and x0 <= point[0] <= x1 and y0 <= point[1] <= y1
    plots.race_contour(result, tmp_path / "race.png")
    (fig,) = figures
    fig.canvas.draw()
    (ax,) = [a for a in fig.axes]
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert any(f"leaves the frame at step {step}" in t for t in labels)
    assert not _overlap(legend.get_window_extent(), ax.get_window_extent())
    # every path has its own (colour, line style, marker)
    styles = {(h.get_color(), h.get_linestyle(), h.get_marker()) for h in legend.legend_handles}
    assert len(styles) == len(result.runs)


def test_the_frame_grows_for_a_path_that_leaves_it_a_little():
    landscape = race.race("quadratic", ["sgd"], steps=1).landscape
    (x0, x1), _ = landscape.bounds
    path = np.array([[0.0, 0.0], [x1 + 0.1 * (x1 - x0), 0.0]])
    (gx0, gx1), _ = plots._frame(landscape, [path])
    assert gx1 > path[1, 0] and gx0 == x0
    assert plots._exits(path, plots._frame(landscape, [path])) is None


def test_the_gif_is_wide_and_keeps_one_palette(tmp_path):
    from PIL import Image

    result = race.race("rosenbrock", ["sgd", "adam", "bfgs"], steps=20)
    path = plots.race_gif(result, tmp_path / "race.gif", frames=6)
    with Image.open(path) as gif:
        assert gif.size[0] >= 800
        colours = set()
        for k in range(gif.n_frames):
            gif.seek(k)
            rgb = np.asarray(gif.convert("RGB")).reshape(-1, 3)
            colours |= set(map(tuple, np.unique(rgb, axis=0)))
        frames = gif.n_frames
    # one palette for the whole animation: every frame draws from the same <= 256 colours,
    # so a path cannot change colour from one frame to the next
    assert frames >= 5 and len(colours) <= 256


def test_the_lr_test_plot_shows_the_falling_part_and_two_distinct_lines(tmp_path, figures):
    tg.manual_seed(0)
    from tinygrad_opt import optim
    from tinygrad_opt.data import make_moons

    X, y = make_moons(200, noise=0.2, seed=0)
    model = nn.MLP([2, 8, 2], activation="tanh")
    result = lr_finder.lr_range_test(model, nn.functional.cross_entropy,
                                     optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                                     (X, y), start_lr=1e-4, end_lr=100, num_iter=80)
    plots.lr_finder(result, tmp_path / "lr.png")
    (fig,) = figures
    (ax,) = fig.axes
    low, high = ax.get_ylim()
    assert low <= result.smoothed.min() and high >= result.smoothed[0]
    assert high < 2 * result.smoothed[0] < np.max(result.losses)  # the blow-up is cut
    vertical = [line for line in ax.get_lines() if len(set(line.get_xdata())) == 1
                and len(line.get_xdata()) == 2]
    assert len(vertical) == 2
    a, b = vertical
    assert a.get_color() != b.get_color() and a.get_linestyle() != b.get_linestyle()
    assert sorted([tuple(a.get_ydata()), tuple(b.get_ydata())]) == [(0.0, 0.5), (0.5, 1.0)]


def test_decision_boundaries_have_a_colour_key_a_class_legend_and_the_mistakes(tmp_path,
                                                                               figures):
    from tinygrad_opt.data import make_moons
    from tinygrad_opt.train import predict

    X, y = make_moons(120, noise=0.3, seed=1)
    tg.manual_seed(1)
    model = nn.MLP([2, 4, 2], activation="tanh")  # untrained: plenty of mistakes
    plots.decision_boundaries({"untrained": model}, X, y, tmp_path / "db.png")
    (fig,) = figures
    wrong = int((predict(model, tg.Tensor(X)).numpy().argmax(1) != y).sum())
    assert wrong > 0
    titles = [a.get_title() for a in fig.axes]
    assert any(f"{wrong} of {len(y)} misclassified" in t for t in titles)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:3] == ["class 0", "class 1", "misclassified"]
    assert any(a.get_ylabel() == "predicted probability of class 1" for a in fig.axes)


def test_the_threshold_is_inside_the_sharpness_picture_and_the_spectrum_says_histogram(
        tmp_path, figures):
    from tinygrad_opt.data import make_moons

    X, y = make_moons(60, noise=0.2, seed=0)
    tg.manual_seed(0)
    model = nn.MLP([2, 6, 2], activation="tanh")
    eos = hessian_lab.edge_of_stability(model, nn.functional.cross_entropy, X, y, lr=3.0,
                                        steps=10, every=5)
    plots.sharpness(eos, tmp_path / "eos.png")
    lab = hessian_lab.analyze(model, nn.functional.cross_entropy, X, y, k=2, samples=2)
    plots.spectrum(lab, tmp_path / "spectrum.png")
    sharp_fig, spec_fig = figures
    ax = sharp_fig.axes[0]
    low, high = ax.get_ylim()
    assert low < eos.threshold < high and high > eos.sharpness.max()
    assert any(line.get_ydata()[0] == eos.threshold for line in ax.get_lines())
    assert spec_fig.axes[0].get_title().startswith("Histogram of log10|λ|")
