"""The fit loop: learning, History, divergence, schedulers, callbacks, exact resume."""

import math

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import data, nn, optim, train
from tinygrad_opt.train import DivergenceError, History, fit

F = nn.functional


@pytest.fixture(scope="module")
def moons():
    X, y = data.make_moons(200, noise=0.1, seed=0)
    return data.train_val_test_split(X, y, seed=0)


def test_fit_learns_and_fills_history(moons, capsys):
    train_set, val_set, _ = moons
    model = nn.MLP([2, 16, 2])
    history = fit(model, F.cross_entropy, optim.Adam(model.parameters(), lr=0.02), train_set,
                  val_set, epochs=8, batch_size=16, progress=False)
    assert history.epochs == 8 and history.epoch == list(range(1, 9))
    assert history.iterations == 8 * math.ceil(120 / 16) == len(history.iteration_loss)
    for column in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "time"):
        values = getattr(history, column)
        assert len(values) == 8 and not any(math.isnan(v) for v in values), column
    assert history.train_loss[-1] < 0.6 * history.train_loss[0]
    assert history.val_acc[-1] > 0.8 and history.lr == [0.02] * 8
    assert history.time == sorted(history.time)
    assert capsys.readouterr().out == ""  # quiet: no bar off a terminal, no epoch lines
    assert "8 epochs" in repr(history)


def test_regression_has_no_accuracy_and_verbose_prints(capsys):
    X, y = data.make_sine(64, seed=1)
    model = nn.MLP([1, 8, 1], activation="tanh")
    history = fit(model, F.mse_loss, optim.SGD(model.parameters(), lr=0.1), (X, y), epochs=3,
                  batch_size=16, verbose=True)
    assert all(math.isnan(v) for v in history.train_acc + history.val_loss)
    out = capsys.readouterr().out
    assert "epoch 1/3  loss" in out and "acc" not in out and out.count("\n") == 3


def test_smoothed_is_a_bias_corrected_ema():
    history = History()
    history.iteration_loss = [2.0] * 5
    np.testing.assert_allclose(history.smoothed(0.9), 2.0)  # no start-up bias toward zero
    history.iteration_loss = [1.0, 3.0]
    # s1 = 0.5, s2 = 0.25 + 1.5 = 1.75; corrected: 0.5 / 0.5 and 1.75 / 0.75
    np.testing.assert_allclose(history.smoothed(0.5), [1.0, 7 / 3])


def test_history_round_trips_through_to_dict(moons):
    train_set, val_set, _ = moons
    model = nn.MLP([2, 4, 2])
    history = fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), train_set,
                  val_set, epochs=2, metrics={"err": lambda o, t: 1 - train.accuracy(o, t)})
    state = history.to_dict()
    assert state["epoch"].dtype == np.int64 and state["iteration_loss"].dtype == np.float64
    again = History.from_dict(state)
    for name in ("iteration_loss", "epoch", "train_loss", "val_acc", "lr", "time"):
        assert getattr(again, name) == getattr(history, name)
    assert again.metrics == history.metrics
    np.testing.assert_allclose(history.metrics["val_err"], 1 - np.array(history.val_acc),
                               atol=1e-12)


def test_divergence_raises_one_sentence_before_the_step(moons):
    train_set, _, _ = moons
    model = nn.MLP([2, 16, 2])
    optimizer = optim.SGD(model.parameters(), lr=1e12)
    with pytest.raises(DivergenceError) as info:
        fit(model, F.cross_entropy, optimizer, train_set, epochs=5)
    error = info.value
    assert isinstance(error, RuntimeError)
    message = str(error)
    assert f"epoch {error.epoch}, iteration {error.iteration} of" in message
    assert "learning rate 1e+12" in message and message.count(". ") == 0
    # every iteration before the failing one was recorded, the failing one was not stepped
    assert error.history.iterations == (error.epoch - 1) * 4 + error.iteration - 1
    assert error.lr == 1e12


def test_schedulers_step_per_epoch_and_plateau_gets_val_loss(moons):
    train_set, val_set, _ = moons
    model = nn.MLP([2, 4, 2])
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, F.cross_entropy, optimizer, train_set, epochs=3,
                  scheduler=optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5))
    assert history.lr == pytest.approx([0.1, 0.05, 0.025])

    class ReduceLROnPlateau:  # a stand-in that records what it is given
        def __init__(self):
            self.seen = []

        def step(self, metric):
            self.seen.append(metric)

    plateau = ReduceLROnPlateau()
    history = fit(model, F.cross_entropy, optimizer, train_set, val_set, epochs=2,
                  scheduler=plateau)
    assert plateau.seen == history.val_loss

    optimizer = optim.SGD(model.parameters(), lr=1.0)
    per_iteration = optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1 / (1 + t))
    history = fit(model, F.cross_entropy, optimizer, train_set, epochs=2, batch_size=60,
                  scheduler=per_iteration, scheduler_interval="iteration")
    assert history.lr == pytest.approx([1.0, 1 / 3])


def test_early_stopping_restores_the_best_weights(moons):
    train_set, val_set, _ = moons
    model = nn.MLP([2, 16, 2])
    stopper = train.EarlyStopping("val_loss", patience=2)
    history = fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=3.0), train_set,
                  val_set, epochs=60, callbacks=[stopper])
    assert history.epochs < 60 and "early stopping" in history.stop_reason
    best = min(history.val_loss)
    assert stopper.best == best
    assert train.evaluate(model, F.cross_entropy, val_set)["loss"] == pytest.approx(best,
                                                                                    rel=1e-5)


def test_evaluate_predict_and_accuracy(moons):
    _, val_set, _ = moons
    model = nn.MLP([2, 8, 2])
    out = train.predict(model, val_set[0], batch_size=7)
    assert out.shape == (40, 2) and not out.requires_grad
    np.testing.assert_allclose(out.numpy(), model(tg.tensor(val_set[0])).numpy(), rtol=1e-6)
    result = train.evaluate(model, F.cross_entropy, val_set, batch_size=16)
    assert result["acc"] == train.accuracy(out, val_set[1])
    full = F.cross_entropy(model(tg.tensor(val_set[0])), tg.tensor(val_set[1])).item()
    assert result["loss"] == pytest.approx(full, rel=1e-5)
    assert train.accuracy(np.array([[0.3], [-1.0]]), np.array([1, 1])) == 0.5  # logits


def test_gradient_clipping_and_argument_checks(moons):
    train_set, _, _ = moons
    model = nn.MLP([2, 8, 2])
    optimizer = optim.SGD(model.parameters(), lr=1e12)  # diverges at once without clipping
    before = [p.numpy().copy() for p in model.parameters()]
    fit(model, F.cross_entropy, optimizer, train_set, epochs=1, batch_size=120,
        clip_grad_norm=1e-12)
    moved = sum(np.abs(p.numpy() - b).sum() for p, b in zip(model.parameters(), before))
    assert 0 < moved < 10  # one step of length at most lr * 1e-12 = 1
    with pytest.raises(ValueError, match="scheduler_interval"):
        fit(model, F.cross_entropy, optimizer, train_set, scheduler_interval="batch")


def test_no_progress_bar_without_tqdm(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    assert train.progress_bar(True, 10) is None
    assert train.progress_bar(False, 10) is None


def _resumable_run(train_set, val_set, epochs, resume=None, init_seed=0, path=None):
    tg.manual_seed(init_seed)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 2))
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    scheduler = optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    history = fit(model, F.cross_entropy, optimizer, train_set, val_set, epochs=epochs,
                  batch_size=16, seed=3, scheduler=scheduler, resume=resume,
                  checkpoint_path=path)
    return model, optimizer, scheduler, history


@pytest.mark.parametrize("through", ["file", "dict"])
def test_resume_continues_bit_for_bit(moons, tmp_path, through):
    """2 epochs, checkpoint, load into fresh objects, 2 more == 4 epochs straight: weights,
    optimizer state, losses, learning rates, shuffling and Dropout's random masks."""
    train_set, val_set, _ = moons
    model4, optimizer4, _, history4 = _resumable_run(train_set, val_set, 4)
    model2, optimizer2, scheduler2, history2 = _resumable_run(train_set, val_set, 2)
    state = train.checkpoint(model2, optimizer2, scheduler2, history2)
    if through == "file":
        tg.save(state, tmp_path / "run.npz")
        state = tmp_path / "run.npz"
    tg.manual_seed(99)  # a different random state: the checkpoint must restore it
    model, optimizer, _, history = _resumable_run(train_set, val_set, 4, resume=state,
                                                  init_seed=7)
    for (name, a), b in zip(model4.state_dict().items(), model.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    assert history.iteration_loss == history4.iteration_loss
    assert history.val_loss == history4.val_loss and history.lr == history4.lr
    assert history.epoch == [1, 2, 3, 4]
    state4, state = optimizer4.state_dict()["state"], optimizer.state_dict()["state"]
    for key in state4:
        np.testing.assert_array_equal(np.asarray(state4[key]["exp_avg_sq"]),
                                      np.asarray(state[key]["exp_avg_sq"]))


def test_checkpoint_path_saves_every_epoch(moons, tmp_path):
    train_set, val_set, _ = moons
    path = tmp_path / "every.npz"
    model4, *_ = _resumable_run(train_set, val_set, 4)
    _resumable_run(train_set, val_set, 3, path=path)
    saved = tg.load(path)
    assert list(saved["history"]["epoch"]) == [1, 2, 3]
    model, *_ = _resumable_run(train_set, val_set, 4, resume=path, init_seed=5)
    for a, b in zip(model4.parameters(), model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
