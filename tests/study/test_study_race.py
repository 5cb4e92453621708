"""Races: the recorded paths are what the optimizers do when stepped by hand, and the
textbook facts (closed-form GD on a quadratic, one-step Newton/LM, Newton's saddle)."""

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import optim
from tinygrad_opt.study import landscapes, race, specs

START = (-1.2, 1.0)


def _by_hand(make, contract, land, steps, start=START):
    """Step an optimizer with the textbook closure; return the iterates."""
    x = tg.tensor(start, dtype="float64", requires_grad=True)
    opt = make([x])

    def first():
        opt.zero_grad()
        loss = land(x)
        loss.backward()
        return loss

    closure = {"first": first, "graph": lambda: land(x),
               "residual": lambda: land.residuals(x)}[contract]
    path = [np.array(start)]
    for _ in range(steps):
        opt.step(closure)
        path.append(x.numpy().copy())
    return np.asarray(path)


HAND = [
    ("sgd:lr=0.001", lambda p: optim.SGD(p, lr=1e-3), "first"),
    ("momentum:lr=0.001", lambda p: optim.SGD(p, lr=1e-3, momentum=0.9), "first"),
    ("nesterov:lr=0.001", lambda p: optim.SGD(p, lr=1e-3, momentum=0.9, nesterov=True),
     "first"),
    ("adam:lr=0.05", lambda p: optim.Adam(p, lr=0.05), "first"),
    ("rmsprop:lr=0.01", lambda p: optim.RMSprop(p, lr=0.01), "first"),
    ("adagrad:lr=0.5", lambda p: optim.Adagrad(p, lr=0.5), "first"),
    ("newton", lambda p: optim.Newton(p), "graph"),
    ("bfgs", lambda p: optim.BFGS(p), "graph"),
    ("gd-exact", lambda p: optim.GD(p, line_search="exact"), "graph"),
    ("lbfgs", lambda p: optim.LBFGS(p, line_search_fn="strong_wolfe", max_iter=1), "first"),
    ("lm", lambda p: optim.LevenbergMarquardt(p), "residual"),
    ("gauss-newton", lambda p: optim.GaussNewton(p), "residual"),
]


@pytest.mark.parametrize("text,make,contract", HAND, ids=[h[0] for h in HAND])
def test_race_path_equals_stepping_by_hand(text, make, contract):
    land = landscapes.get("rosenbrock")
    run = race.run_one(land, text, START, steps=25)
    expected = _by_hand(make, contract, land, run.steps)
    np.testing.assert_array_equal(run.path, expected)
    assert run.path.shape == (run.steps + 1, 2)
    np.testing.assert_allclose(run.loss, land.value(run.path[:, 0], run.path[:, 1]))
    np.testing.assert_allclose(run.dist, np.hypot(run.path[:, 0] - 1, run.path[:, 1] - 1))


def test_gradient_descent_on_the_quadratic_follows_the_closed_form():
    land = landscapes.quadratic(kappa=10)  # f = ½(x² + 10 y²)
    eta = 0.15
    run = race.run_one(land, f"sgd:lr={eta}", (-5.0, -2.0), steps=40)
    k = np.arange(41)
    np.testing.assert_allclose(run.path[:, 0], -5.0 * (1 - eta) ** k, rtol=1e-12)
    np.testing.assert_allclose(run.path[:, 1], -2.0 * (1 - 10 * eta) ** k, rtol=1e-12,
                               atol=1e-300)
    assert list(run.nfev) == list(range(41))  # one evaluation per step


def test_gradient_descent_diverges_beyond_two_over_kappa():
    run = race.run_one(landscapes.quadratic(kappa=20), "sgd:lr=0.11", steps=2000)
    assert run.status == "diverged"  # |1 - 0.11·20| = 1.2 > 1


@pytest.mark.parametrize("name", ["newton", "newton-pure", "gauss-newton"])
def test_second_order_methods_solve_booth_in_one_step(name):
    run = race.run_one("booth", name, (-10.0, 10.0), steps=5)
    np.testing.assert_allclose(run.path[1], [1.0, 3.0], atol=1e-12)
    assert run.status == "converged"


def test_pure_newton_jumps_onto_the_saddle_and_gradient_descent_escapes():
    newton = race.run_one("saddle", "newton-pure", (1.0, 1e-3), steps=3)
    np.testing.assert_allclose(newton.path[1], [0.0, 0.0], atol=1e-15)
    gd = race.run_one("saddle", "sgd:lr=0.1", (1.0, 1e-3), steps=500)
    assert gd.status == "escaped" and gd.loss[-1] < -100
    # y grows by (1 + 2η) per step while x shrinks by (1 - 2η)
    np.testing.assert_allclose(gd.path[:5, 1], 1e-3 * 1.2 ** np.arange(5), rtol=1e-12)


def test_line_search_trial_points_are_recorded():
    run = race.run_one("rosenbrock", "bfgs", START, steps=30)
    assert run.nfev[-1] == sum(len(e) for e in run.evals)
    assert run.nfev[-1] > run.steps  # some steps tried more than one point
    trials = run.trial_points()
    assert len(trials) > 0
    assert not any((np.abs(run.path - t).max(axis=1) == 0).any() for t in trials)
    # each trial point lies on the segment from x_k along the step direction
    k = next(k for k, e in enumerate(run.evals) if len(e) > 1)
    for p in run.evals[k]:
        d1, d2 = p - run.path[k], run.path[k + 1] - run.path[k]
        assert abs(d1[0] * d2[1] - d1[1] * d2[0]) < 1e-9 * (1 + np.abs(d1).max())


def test_table_counts_steps_and_evaluations_to_the_tolerance():
    result = race.race("rosenbrock", ["newton", "bfgs", "sgd:lr=0.001"], steps=60, tol=1e-8)
    rows = {r["optimizer"]: r for r in result.table()}
    assert set(rows) == {"newton", "bfgs", "sgd lr=0.001"}
    for label, r in rows.items():
        run = result[label]
        k = run.first_below(1e-8)
        assert r["steps_to_tol"] == k
        if k is not None:
            assert run.gap[k] <= 1e-8 and (k == 0 or run.gap[k - 1] > 1e-8 or
                                           np.all(run.gap[:k] > 1e-8))
            assert r["evals_to_tol"] == run.nfev[k]
    assert rows["sgd lr=0.001"]["steps_to_tol"] is None
    assert rows["newton"]["steps_to_tol"] < rows["bfgs"]["steps_to_tol"]
    text = result.format_table()
    assert all(label in text for label in rows)


def test_fair_mode_tunes_the_learning_rate_on_the_grid():
    land = landscapes.quadratic(kappa=10)
    best, scores = race.tune_lr(land, "sgd", steps=50, tol=1e-6)
    grid = [float(f"{land.lr * f:.3g}") for f in race.FAIR_FACTORS]
    assert [lr for lr, _ in scores] == grid
    assert best.kwargs["lr"] == min(scores, key=lambda s: s[1])[0]
    # the best fixed step for eigenvalues 1 and 10 is 2/(1 + 10) ≈ 0.18, the landscape's
    # default (the grid's centre); 0.575 diverges (|1 - 5.75| > 1)
    assert land.lr == pytest.approx(2 / 11)
    assert best.kwargs["lr"] == pytest.approx(0.182)
    fair = race.race(land, ["sgd", "newton"], steps=50, fair=True)
    assert fair["sgd"].hyperparameters["lr"] == pytest.approx(0.182)
    assert fair["newton"].tuning is None  # second-order methods keep their own step


def test_bad_requests_fail_with_one_sentence():
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        race.race("rosenbrock", ["adamm"])
    with pytest.raises(ValueError, match="least-squares landscape"):
        race.race("rastrigin", ["lm"])
    with pytest.raises(ValueError, match="Invalid learning rate"):
        race.race("rosenbrock", ["sgd:lr=-1"])
    with pytest.raises(ValueError, match="unknown hyperparameter 'gamma'"):
        specs.parse("adam:gamma=3")


def test_spec_lists_split_at_names_not_at_settings():
    found = specs.parse_list("sgd:lr=0.1,momentum=0.9,adam;newton")
    assert [s.name for s in found] == ["sgd", "adam", "newton"]
    assert found[0].kwargs == {"lr": 0.1, "momentum": 0.9}
    assert specs.parse("adam:betas=0.8/0.9").kwargs["betas"] == (0.8, 0.9)


# -- issue 13: fair momentum, "diverged", gradient noise, derivative-free racers -------------


def steep_sign_flips(run, angle_degrees):
    """Sign changes of the steep coordinate v = -sin(θ)x + cos(θ)y along the path, counted
    while |v| is above 1e-8 of its largest value (below that it is rounding noise)."""
    a = np.radians(angle_degrees)
    v = -np.sin(a) * run.path[:, 0] + np.cos(a) * run.path[:, 1]
    big = np.abs(v) > 1e-8 * np.abs(v).max()
    return int(np.sum((np.sign(v[1:]) != np.sign(v[:-1])) & big[1:] & big[:-1]))


def test_momentum_at_the_fair_default_lr_zigzags_less_than_sgd():
    result = race.race("quadratic:kappa=50,angle=30", ["sgd", "momentum"],
                       start=(-4.23, -2.67), steps=300)
    sgd, momentum = result["sgd"], result["momentum"]
    assert momentum.hyperparameters["lr"] == pytest.approx(sgd.hyperparameters["lr"] * 0.1)
    assert "momentum at lr·(1 - β)" in result.caption()
    sgd_flips, momentum_flips = steep_sign_flips(sgd, 30), steep_sign_flips(momentum, 30)
    assert momentum_flips < sgd_flips / 3, (momentum_flips, sgd_flips)
    assert momentum.gap[-1] < sgd.gap[-1]  # and it gets further along the valley
    # at the same lr the heavy ball takes 10x larger steps: the unfair picture of the issue
    unfair = race.race("quadratic:kappa=50,angle=30",
                       [f"momentum:lr={sgd.hyperparameters['lr']}"], start=(-4.23, -2.67),
                       steps=300)
    assert steep_sign_flips(unfair.runs[0], 30) > momentum_flips


def test_a_run_whose_loss_explodes_is_labelled_diverged_everywhere():
    result = race.race("quadratic:kappa=10", ["sgd:lr=0.21", "sgd"], steps=200)
    bad = result["sgd lr=0.21"]
    assert bad.status == "diverged" and "grew" in bad.message
    assert np.all(np.isfinite(bad.path)) and bad.steps < 200  # stopped before overflowing
    rows = {r["optimizer"]: r for r in result.table()}
    assert rows["sgd lr=0.21"]["status"] == "diverged" and rows["sgd"]["status"] != "diverged"
    assert "diverged" in result.format_table()
    assert {r["label"]: r["status"] for r in result.to_dict()["runs"]}["sgd lr=0.21"] == \
        "diverged"


def test_gradient_noise_is_seeded_the_same_for_every_optimizer_and_exact_on_sgd():
    sigma, lr = 0.3, 0.05
    land = landscapes.quadratic(kappa=10)
    noisy = race.run_one(land, f"sgd:lr={lr}", steps=5, noise=sigma, seed=7)
    # replay: x ← x - lr (∇f(x) + σ ξ_k) with the same seeded ξ_k
    rng = np.random.default_rng(7)
    x = np.array(land.start)
    for k in range(5):
        x = x - lr * (np.array([1.0, 10.0]) * x + sigma * rng.standard_normal(2))
        np.testing.assert_allclose(noisy.path[k + 1], x, rtol=1e-12)
    again = race.race(land, [f"sgd:lr={lr}", "newton"], steps=5, noise=sigma, seed=7)
    np.testing.assert_array_equal(again.runs[0].path, noisy.path)
    assert not np.allclose(again["newton"].path[-1], 0)  # the noise moves Newton too
    assert "gradient noise σ = 0.3" in again.caption()
    with pytest.raises(ValueError, match="residuals"):
        race.race(land, ["lm"], noise=0.1)
    with pytest.raises(ValueError, match="noise=-1"):
        race.race(land, ["sgd"], noise=-1)


@pytest.mark.parametrize("name", ["random-search", "random-local-search", "numerical-gd",
                                  "annealing", "evolution"])
def test_derivative_free_racers_are_seeded_and_count_their_evaluations(name):
    first = race.run_one("booth", name, steps=30)
    again = race.run_one("booth", name, steps=30)
    np.testing.assert_array_equal(first.path, again.path)  # seeded
    assert first.loss[-1] < first.loss[0]  # they make progress without a gradient
    per_step = np.diff(first.nfev)
    expected = {"numerical-gd": 4, "evolution": 20}.get(name, 1)  # n + 1 = 3, plus the move
    assert np.all(per_step[1:] == expected), per_step[:5]


def test_random_local_search_never_gets_worse_and_annealing_can_climb():
    local = race.run_one("double_well", "random-local-search:step_size=0.3", steps=60)
    assert np.all(np.diff(local.loss) <= 0)
    hot = race.run_one("double_well", "annealing:temperature=5,step_size=0.5", steps=60)
    assert np.any(np.diff(hot.loss) > 0)  # Metropolis accepts some uphill moves


def test_numerical_gd_follows_gradient_descent_to_the_difference_error():
    exact = race.run_one("booth", "sgd:lr=0.05", steps=20)
    numeric = race.run_one("booth", "numerical-gd:lr=0.05,scheme=central", steps=20)
    np.testing.assert_allclose(numeric.path, exact.path, atol=1e-6)


def test_the_race_command_takes_noise_and_draws_one_dimensional_races(tmp_path, capsys):
    import json

    from tinygrad_opt.cli import main

    code = main(["race", "--landscape", "parabola", "--optimizers", "sgd:lr=0.9,sgd:lr=1.05",
                 "--steps", "30", "--out", str(tmp_path), "--no-progress"])
    assert code == 0 and "diverged" in capsys.readouterr().out
    saved = json.loads((tmp_path / "race.json").read_text())
    assert [r["status"] for r in saved["runs"]] == ["budget", "diverged"]
    if (tmp_path / "curves.png").exists():  # with matplotlib: the 1-D picture, no contour
        assert (tmp_path / "landscape.png").exists() and not (tmp_path / "contour.png").exists()
    code = main(["race", "--landscape", "quadratic", "--optimizers", "sgd,numerical-gd",
                 "--noise", "0.2", "--seed", "3", "--steps", "10", "--no-plots",
                 "--out", str(tmp_path), "--no-progress"])
    assert code == 0 and "gradient noise σ = 0.2 (seed 3)" in capsys.readouterr().out
    assert main(["race", "--landscape", "booth", "--optimizers", "lm", "--noise", "0.1",
                 "--out", str(tmp_path), "--no-progress"]) == 2
    assert main(["race", "--landscape", "parabola", "--start", "1,2", "--out", str(tmp_path),
                 "--no-progress"]) == 2
    assert "residuals" in capsys.readouterr().err
