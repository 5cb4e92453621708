"""The test functions (2-D and 1-D): values, gradients and Hessians against closed forms."""

import math
import os

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt.study import landscapes

# Hand transcriptions of the gradients (independent of the Tensor code).
GRADIENTS = {
    "rosenbrock": lambda x, y: (-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)),
    "booth": lambda x, y: (2 * (x + 2 * y - 7) + 4 * (2 * x + y - 5),
                           4 * (x + 2 * y - 7) + 2 * (2 * x + y - 5)),
    "himmelblau": lambda x, y: (4 * x * (x * x + y - 11) + 2 * (x + y * y - 7),
                                2 * (x * x + y - 11) + 4 * y * (x + y * y - 7)),
    "six_hump_camel": lambda x, y: (8 * x - 8.4 * x ** 3 + 2 * x ** 5 + y,
                                    x - 8 * y + 16 * y ** 3),
    "rastrigin": lambda x, y: (2 * x + 20 * math.pi * math.sin(2 * math.pi * x),
                               2 * y + 20 * math.pi * math.sin(2 * math.pi * y)),
    "saddle": lambda x, y: (2 * x, -2 * y),
}


def _beale_grad(x, y):
    a, b, c = 1.5 - x + x * y, 2.25 - x + x * y * y, 2.625 - x + x * y ** 3
    return (2 * a * (y - 1) + 2 * b * (y * y - 1) + 2 * c * (y ** 3 - 1),
            2 * a * x + 2 * b * 2 * x * y + 2 * c * 3 * x * y * y)


GRADIENTS["beale"] = _beale_grad


def _grad(land, point):
    p = tg.tensor(point, dtype="float64", requires_grad=True)
    (g,) = tg.grad(land(p), p)
    return g.numpy()


@pytest.mark.parametrize("name", sorted(GRADIENTS))
def test_gradient_matches_the_closed_form(name):
    land = landscapes.get(name)
    rng = np.random.default_rng(1)
    (x0, x1), (y0, y1) = land.bounds
    for _ in range(5):
        point = (rng.uniform(x0, x1), rng.uniform(y0, y1))
        np.testing.assert_allclose(_grad(land, point), GRADIENTS[name](*point), rtol=1e-10,
                                   atol=1e-9)


@pytest.mark.parametrize("name", landscapes.names())
def test_known_minima_are_stationary_with_value_f_star(name):
    land = landscapes.get(name)
    for m in land.minima:
        p = tg.tensor(m, dtype="float64")
        assert land(p).item() == pytest.approx(land.f_min, abs=1e-12)
        assert np.abs(_grad(land, m)).max() < 1e-9
        H = tg.autograd.hessian(lambda q: land(q), tg.tensor(m, dtype="float64")).numpy()
        assert np.linalg.eigvalsh(H).min() > 0  # a strict minimum


def test_curvature_facts_of_the_lecture():
    H = tg.autograd.hessian(lambda q: landscapes.get("rosenbrock")(q),
                            tg.tensor([1.0, 1.0], dtype="float64")).numpy()
    np.testing.assert_allclose(H, [[802, -400], [-400, 200]])
    np.testing.assert_allclose(np.linalg.eigvalsh(H), [0.3993607, 1001.6006], rtol=1e-6)
    Hb = tg.autograd.hessian(lambda q: landscapes.get("booth")(q),
                             tg.tensor([-3.0, 7.0], dtype="float64")).numpy()
    np.testing.assert_allclose(Hb, [[10, 8], [8, 10]])
    Hs = tg.autograd.hessian(lambda q: landscapes.get("saddle")(q),
                             tg.tensor([0.3, -0.2], dtype="float64")).numpy()
    np.testing.assert_allclose(Hs, [[2, 0], [0, -2]])


@pytest.mark.parametrize("kappa,angle", [(20, 0), (100, 30), (7.5, -45)])
def test_quadratic_has_eigenvalues_one_and_kappa_along_the_rotated_axes(kappa, angle):
    land = landscapes.quadratic(kappa, angle)
    H = tg.autograd.hessian(lambda q: land(q), tg.tensor([0.4, -1.0], dtype="float64")).numpy()
    w, V = np.linalg.eigh(H)
    np.testing.assert_allclose(w, [1.0, kappa], rtol=1e-12)
    t = math.radians(angle)
    u_axis = np.array([math.cos(t), math.sin(t)])
    assert abs(abs(V[:, 0] @ u_axis) - 1) < 1e-10


@pytest.mark.parametrize("name", ["rosenbrock", "beale", "booth", "himmelblau", "quadratic"])
def test_residuals_square_to_f(name):
    land = landscapes.get(name)
    rng = np.random.default_rng(2)
    for _ in range(4):
        p = tg.tensor(rng.normal(size=2), dtype="float64")
        r = land.residuals(p).numpy()
        assert (r * r).sum() == pytest.approx(land(p).item(), rel=1e-12)


def test_grid_values_match_pointwise_values():
    land = landscapes.get("himmelblau")
    X, Y, Z = land.grid(7)
    for i in (0, 3, 6):
        for j in (1, 5):
            p = tg.tensor([X[i, j], Y[i, j]], dtype="float64")
            assert Z[i, j] == pytest.approx(land(p).item(), rel=1e-12)


def test_distance_goes_to_the_nearest_minimum():
    land = landscapes.get("himmelblau")
    assert land.distance((3.0, 2.5)) == pytest.approx(0.5)
    assert land.distance([(3.0, 2.0), (-3.779310253377747, -2.283185991286170)]) \
        == pytest.approx([0.0, 1.0])
    assert math.isnan(landscapes.get("saddle").distance((0.0, 0.0)))


def test_lookup_and_errors():
    assert landscapes.get("camel").name == "six_hump_camel"
    q = landscapes.get("quadratic:kappa=50,angle=30")
    assert q.title.startswith("ill-conditioned quadratic (κ = 50")
    with pytest.raises(ValueError, match="unknown landscape"):
        landscapes.get("nope")
    with pytest.raises(ValueError, match="kappa=K"):
        landscapes.get("quadratic:size=3")
    with pytest.raises(ValueError, match="kappa"):
        landscapes.quadratic(0.5)
    with pytest.raises(ValueError, match="not a sum of squares"):
        landscapes.get("rastrigin").residuals(tg.tensor([0.0, 0.0]))


# -- the 1-D landscapes (issue 13, item 11) ---------------------------------------------------


def test_one_dimensional_landscapes_have_their_stated_minima():
    parabola, well = landscapes.get("parabola"), landscapes.get("double_well")
    assert parabola.dim == well.dim == 1 and "parabola" not in landscapes.names()
    assert parabola.value(np.array([3.0])) == pytest.approx([9.0])
    for x in (well.minima[0][0], landscapes.DOUBLE_WELL_LOCAL_MIN):
        g = _grad(well, [x])
        assert abs(g[0]) < 1e-12  # f'(x) = 4x³ - 6x + 1 = 0
        assert 12 * x * x - 6 > 0  # f'' > 0: a minimum
    assert well.value(np.array([well.minima[0][0]]))[0] == pytest.approx(well.f_min, abs=1e-14)
    assert well.f_min < float(well.value(np.array([landscapes.DOUBLE_WELL_LOCAL_MIN]))[0])


def test_the_parabola_shows_the_four_learning_rate_regimes():
    from tinygrad_opt.study import race

    result = race.race("parabola", ["sgd:lr=0.1", "sgd:lr=0.5", "sgd:lr=0.9", "sgd:lr=1.05"],
                       steps=40)
    slow, one_step, zigzag, too_big = result.runs
    x_slow, x_zig = slow.path[:, 0], zigzag.path[:, 0]
    np.testing.assert_allclose(x_slow, 4.0 * 0.8 ** np.arange(len(x_slow)))  # x ← (1-2η)x
    assert np.all(np.diff(np.sign(x_slow)) == 0) and np.all(np.diff(np.sign(x_zig)) != 0)
    assert one_step.path[1, 0] == 0.0 and one_step.first_below(1e-12) == 1
    assert too_big.status == "diverged"


def test_a_small_step_stops_in_the_double_wells_local_minimum():
    from tinygrad_opt.study import race

    result = race.race("double_well", ["sgd:lr=0.02", "sgd:lr=0.1"], steps=100)
    local, jumper = result.runs
    assert local.path[-1, 0] == pytest.approx(landscapes.DOUBLE_WELL_LOCAL_MIN, abs=1e-6)
    assert jumper.path[-1, 0] == pytest.approx(landscapes.get("double_well").minima[0][0],
                                               abs=1e-6)


def test_a_one_dimensional_race_is_drawn_as_a_curve_with_its_iterates(tmp_path):
    pytest.importorskip("matplotlib")
    from tinygrad_opt.study import plots, race

    result = race.race("parabola", ["sgd:lr=0.9", "sgd:lr=1.05"], steps=20)
    out = plots.landscape_1d(result, tmp_path / "parabola.png")
    assert os.path.getsize(out) > 5000
    with pytest.raises(ValueError, match="1-D races"):
        plots.landscape_1d(race.race("booth", ["sgd"], steps=2), tmp_path / "x.png")
