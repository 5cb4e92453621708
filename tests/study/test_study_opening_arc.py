"""The lecture's opening arc on the digits (study.opening_arc, ``tinygrad-opt
opening-arc``): random search, random local search, the numerical gradient, backprop."""

import pytest

from tinygrad_opt.cli import main
from tinygrad_opt.study import opening_arc

pytest.importorskip("sklearn")  # the digits ship with scikit-learn


@pytest.fixture(scope="module")
def arc():
    return opening_arc.run(tries=150, steps=4, seed=0)


def test_each_strategy_reports_accuracy_evaluations_and_time(arc):
    names = [row["strategy"] for row in arc.rows]
    assert names[0] == "random search" and names[-1].startswith("backprop")
    for row in arc.rows:
        assert 0 <= row["test_accuracy"] <= 1 and row["seconds"] >= 0
    assert arc["random search"]["loss_evaluations"] == 150
    assert arc["random local search"]["loss_evaluations"] == 150
    numeric = arc["numerical gradient (forward, h=1e-4)"]
    backprop = arc["backprop (analytic gradient)"]
    # forward differences: 651 loss evaluations a step (f(W), then one per parameter),
    # plus the loss at the new point; backprop: one forward and one backward a step
    assert numeric["loss_evaluations"] == 4 * (651 + 1)
    assert backprop["loss_evaluations"] == backprop["gradient_evaluations"] == 4


def test_numerical_and_analytic_gradients_take_the_same_path(arc):
    numeric = arc["numerical gradient (forward, h=1e-4)"]
    backprop = arc["backprop (analytic gradient)"]
    # the hinge is piecewise linear: a forward difference across a kink is off by O(1)
    # in that coordinate, so the two paths agree to about a percent, not to h
    assert numeric["train_loss"] == pytest.approx(backprop["train_loss"], rel=1e-2)
    assert abs(numeric["test_accuracy"] - backprop["test_accuracy"]) <= 0.02
    assert arc.gradient_check < 1e-6


def test_following_the_slope_beats_guessing(arc):
    guessed = arc["random search"]
    assert guessed["train_loss"] > arc["random local search"]["train_loss"] \
        > arc["backprop (analytic gradient)"]["train_loss"]
    assert guessed["test_accuracy"] < arc["backprop (analytic gradient)"]["test_accuracy"]


def test_the_command_prints_the_side_by_side_table(tmp_path, capsys):
    out_file = tmp_path / "arc.json"
    code = main(["opening-arc", "--tries", "20", "--steps", "1", "--json", str(out_file)])
    out = capsys.readouterr().out
    assert code == 0 and "random search" in out and "gradient check" in out
    assert out_file.exists()
    assert main(["opening-arc", "--steps", "0"]) == 2
    with pytest.raises(ValueError, match="loss must be"):
        opening_arc.run(loss="hinge")
