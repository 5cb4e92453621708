"""Exact resume with callbacks (EarlyStopping's state is in the checkpoint), Ctrl-C during
fit, and non-finite training data named by array and row."""

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import data, nn, optim, train
from tinygrad_opt.train import EarlyStopping, TrainingInterrupted, fit

F = nn.functional


@pytest.fixture(scope="module")
def moons():
    X, y = data.make_moons(200, noise=0.3, seed=1)
    return data.train_val_test_split(X, y, seed=0)


class InterruptAt:
    """Raise KeyboardInterrupt after ``epoch`` epochs, as Ctrl-C would."""

    def __init__(self, epoch):
        self.epoch = epoch

    def __call__(self, history, model, optimizer):
        if history.epochs == self.epoch:
            raise KeyboardInterrupt


def _run(split, stopper, path, resume=None, interrupt=None):
    tg.manual_seed(0)
    model = nn.MLP([2, 32, 2])
    optimizer = optim.SGD(model.parameters(), lr=2.0, momentum=0.9)
    # the lr falls until epoch 5, then stays: EarlyStopping("lr") stops after epoch 8
    scheduler = optim.lr_scheduler.MultiStepLR(optimizer, milestones=[1, 2, 3, 4], gamma=0.5)
    callbacks = [stopper] + ([interrupt] if interrupt else [])
    history = fit(model, F.cross_entropy, optimizer, split.train, split.val, epochs=12,
                  batch_size=16, scheduler=scheduler, callbacks=callbacks, checkpoint_path=path,
                  resume=resume)
    return model, history


@pytest.mark.parametrize("monitor", ["val_loss", "lr"])
def test_early_stopping_resumes_exactly_after_an_interrupt(moons, tmp_path, monitor):
    """12 epochs straight vs interrupted after epoch 4 and resumed in a fresh process
    state: the same stop epoch, history and restored best weights."""
    path = tmp_path / "run.npz"
    model, history = _run(moons, EarlyStopping(monitor, patience=3), path)
    assert 4 < history.epochs < 12, history.epochs  # it stops, and after the interrupt

    with pytest.raises(TrainingInterrupted) as info:
        _run(moons, EarlyStopping(monitor, patience=3), path, interrupt=InterruptAt(4))
    stop = info.value
    assert isinstance(stop, KeyboardInterrupt) and stop.history.epochs == 4
    # the callbacks of epoch 4 ran before its checkpoint could be written: epoch 3 is saved
    assert stop.saved_epochs == 3 == len(tg.load(path)["history"]["epoch"])

    stopper = EarlyStopping(monitor, patience=3)
    resumed_model, resumed = _run(moons, stopper, path, resume=path)
    assert resumed.epoch == history.epoch and resumed.stop_reason == history.stop_reason
    assert resumed.iteration_loss == history.iteration_loss
    assert resumed.val_loss == history.val_loss
    for (name, a), b in zip(model.state_dict().items(), resumed_model.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    best = stopper.best_epoch
    assert stopper.best == getattr(resumed, monitor)[best - 1]


def test_resume_refuses_other_callbacks(moons, tmp_path):
    path = tmp_path / "run.npz"
    _run(moons, EarlyStopping("val_loss", patience=50), path)
    with pytest.raises(ValueError, match="same order"):
        _run(moons, lambda *a: False, path, resume=path)
    with pytest.raises(ValueError, match="monitors 'val_loss'"):
        _run(moons, EarlyStopping("val_acc", patience=50), path, resume=path)


@pytest.mark.parametrize("where", ["X", "y", "val X"])
def test_non_finite_data_is_named_before_training(moons, where):
    (X, y), (Xv, yv) = moons.train, moons.val
    X, y, Xv = X.copy(), y.astype(np.float32).reshape(-1, 1), Xv.copy()
    target = {"X": X, "y": y, "val X": Xv}[where]
    target[7, 0] = np.nan if where != "y" else np.inf
    model = nn.MLP([2, 4, 1])
    before = [p.numpy().copy() for p in model.parameters()]
    with pytest.raises(ValueError) as info:
        fit(model, F.mse_loss, optim.SGD(model.parameters(), lr=0.1), (X, y),
            (Xv, yv.astype(np.float32).reshape(-1, 1)), epochs=1)
    message = str(info.value)
    part, name = {"X": ("training", "inputs X"), "y": ("training", "targets y"),
                  "val X": ("validation", "inputs X")}[where]
    assert f"the {part} {name} hold {'inf' if where == 'y' else 'nan'} at row 7" in message
    assert "learning rate" in message and message.count(". ") == 0
    for p, b in zip(model.parameters(), before):  # nothing was trained
        np.testing.assert_array_equal(p.numpy(), b)


def test_first_non_finite():
    a = np.ones((4, 3))
    assert data.first_non_finite(a) is None
    a[2, 1], a[3, 0] = -np.inf, np.nan
    assert data.first_non_finite(a) == (2, -np.inf)
    assert data.first_non_finite(np.arange(5)) is None
    assert data.first_non_finite(tg.tensor([1.0, float("nan")])) == (1, pytest.approx(np.nan,
                                                                                      nan_ok=True))


def test_divergence_on_finite_data_still_blames_the_lr(moons):
    model = nn.MLP([2, 16, 2])
    with pytest.raises(train.DivergenceError, match="lower the learning rate"):
        fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=1e12), moons.train,
            epochs=3)
