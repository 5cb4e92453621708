"""Grad mode and the engine's state are per thread, as in PyTorch: threads that
each train their own model (a Dask worker runs trials on threads) neither
switch recording off for each other nor change each other's numbers."""

import threading

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import nn, optim

STEPS = 200


def _make_model(seed):
    tg.manual_seed(seed)
    return nn.MLP([2, 12, 3], activation="tanh")


def _data(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((32, 2)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    return tg.tensor(X), tg.tensor(y)


def _train(model, seed, start=None):
    """Adam on a fixed batch; each step also evaluates under no_grad (the mode
    switch that, when process-global, broke the other threads)."""
    X, y = _data(seed)
    opt = optim.Adam(model.parameters(), lr=0.05)
    if start is not None:
        start.wait()
    for _ in range(STEPS):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        with tg.no_grad():
            model(X)
    return [p.numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("n_threads", [2, 4])
def test_threads_training_their_own_models_match_their_single_thread_runs(n_threads):
    seeds = list(range(n_threads))
    alone = [_train(_make_model(s), s) for s in seeds]
    models = [_make_model(s) for s in seeds]  # built first: the shared generator is serial
    start = threading.Barrier(n_threads)
    results, errors = [None] * n_threads, []

    def worker(k):
        try:
            results[k] = _train(models[k], seeds[k], start)
        except Exception as error:  # noqa: BLE001  (reported below, with its thread)
            errors.append((k, error))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for k in range(n_threads):
        for ours, single in zip(results[k], alone[k]):
            np.testing.assert_array_equal(ours, single)


def test_no_grad_in_one_thread_leaves_recording_on_in_another():
    entered, checked = threading.Event(), threading.Event()

    def holder():
        with tg.no_grad():
            entered.set()
            checked.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    entered.wait(5)
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    recorded = (x * x).sum()
    checked.set()
    thread.join()
    assert tg.is_grad_enabled() and recorded.requires_grad


def test_a_new_thread_starts_with_grad_mode_on():
    seen = []
    with tg.no_grad():
        thread = threading.Thread(target=lambda: seen.append(tg.is_grad_enabled()))
        thread.start()
        thread.join()
    assert seen == [True]


def test_draws_from_several_threads_are_whole_draws_of_the_seeded_stream():
    """Each thread's draws come whole from the one seeded stream: together they
    are exactly the draws one thread would make (in some order)."""
    n_threads, n_draws = 4, 50
    tg.manual_seed(0)
    serial = sorted(tuple(tg.rand(10).tolist()) for _ in range(n_threads * n_draws))
    tg.manual_seed(0)
    drawn = []

    def draw():
        drawn.extend(tuple(tg.rand(10).tolist()) for _ in range(n_draws))

    threads = [threading.Thread(target=draw) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(drawn) == serial
