"""Sweeps: search spaces, the results file, resume, divergence, and dead workers
(a local process pool and a real Dask LocalCluster with two worker processes)."""

import json
import math
import os
import signal
import sys
import time

import numpy as np
import pytest

from tinygrad_opt.study import sweep


def _slow_objective(config):
    """A trial that takes a while (so that a worker can be killed in the middle of one)."""
    time.sleep(config.get("sleep", 0.0))
    return {"score": (config["x"] - 3) ** 2, "x": config["x"]}


def _die_first_time(config):
    """The first trial to start kills its worker process; every later one succeeds."""
    try:
        fd = os.open(config["marker"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        time.sleep(0.05)
        return {"score": float(config["x"])}
    os.close(fd)
    os._exit(1)


def _flaky(config):
    raise RuntimeError(f"trial {config['x']} always fails")


def _lines(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_grid_is_the_product_and_random_search_is_seeded_and_log_uniform():
    space = {"optimizer": ["sgd", "adam"], "lr": sweep.LogUniform(1e-3, 1, n=4),
             "seed": [0, 1, 2]}
    grid = sweep.grid_configs(space)
    assert len(grid) == 2 * 4 * 3
    assert sorted({c["lr"] for c in grid}) == pytest.approx([1e-3, 1e-2, 1e-1, 1.0])
    a = sweep.random_configs(space, 200, seed=5)
    b = sweep.random_configs(space, 200, seed=5)
    assert a == b and len(a) == 200
    logs = np.log10([c["lr"] for c in a])
    assert logs.min() >= -3 and logs.max() <= 0
    # log-uniform: each decade gets about a third of the draws
    counts = np.histogram(logs, bins=[-3, -2, -1, 0])[0]
    assert counts.min() > 40
    assert {c["optimizer"] for c in a} == {"sgd", "adam"}


def test_trial_ids_are_stable_and_ignore_key_order():
    assert sweep.trial_id({"a": 1, "b": "x"}) == sweep.trial_id({"b": "x", "a": 1})
    assert sweep.trial_id({"a": 1}) != sweep.trial_id({"a": 2})
    assert len(sweep.trial_id({"a": 1})) == 12


def test_serial_sweep_appends_one_line_per_trial_and_resumes(tmp_path):
    path = tmp_path / "results.jsonl"
    configs = [{"x": float(x)} for x in range(6)] + [{"x": 0.0}]  # one duplicate
    seen = []

    def stop_after_two(record):
        seen.append(record["trial_id"])
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(configs, _slow_objective, path, executor="serial", progress=False,
                        callback=stop_after_two)
    assert [r["trial_id"] for r in _lines(path)] == seen
    resumed = []
    result = sweep.run_sweep(configs, _slow_objective, path, executor="serial", progress=False,
                             callback=lambda r: resumed.append(r["trial_id"]))
    assert result.skipped == 2 and len(resumed) == 4
    ids = [r["trial_id"] for r in _lines(path)]
    assert sorted(ids) == sorted({sweep.trial_id(c) for c in configs}) and len(ids) == 6
    assert result.best()[0]["config"] == {"x": 3.0}
    again = sweep.run_sweep(configs, _slow_objective, path, executor="serial", progress=False)
    assert again.skipped == 6 and len(_lines(path)) == 6


def test_a_partial_last_line_is_cut_off(tmp_path):
    path = tmp_path / "results.jsonl"
    sweep.run_sweep([{"x": 1.0}], _slow_objective, path, executor="serial", progress=False)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"trial_id": "abc", "sta')  # a crash in the middle of a write
    assert len(sweep.load_results(path)) == 1
    sweep.run_sweep([{"x": 1.0}, {"x": 2.0}], _slow_objective, path, executor="serial",
                    progress=False)
    assert [r["config"]["x"] for r in _lines(path)] == [1.0, 2.0]


def test_failures_are_retried_then_recorded_and_retried_on_resume(tmp_path):
    path = tmp_path / "results.jsonl"
    result = sweep.run_sweep([{"x": 1.0}], _flaky, path, executor="serial", retries=2,
                             progress=False)
    (record,) = result.records
    assert record["status"] == "error" and record["attempts"] == 3
    assert "always fails" in record["error"]
    sweep.run_sweep([{"x": 1.0}], _flaky, path, executor="serial", retries=0, progress=False)
    assert len(_lines(path)) == 2  # an error is not "finished": resume tries it again


def test_diverged_trials_are_recorded_and_k_fold_scores_average(tmp_path):
    path = tmp_path / "results.jsonl"
    configs = [{"optimizer": "sgd", "lr": 0.3, "epochs": 3, "n_samples": 120},
               {"optimizer": "sgd", "lr": 1e4, "epochs": 3, "n_samples": 120},
               {"optimizer": "adam", "lr": 0.01, "epochs": 2, "n_samples": 120, "cv": 3}]
    result = sweep.run_sweep(configs, results=path, executor="serial", progress=False)
    by_lr = {r["config"]["lr"]: r for r in result.records}
    assert by_lr[0.3]["status"] == "ok" and by_lr[0.3]["score"] > 0
    assert by_lr[1e4]["status"] == "diverged" and by_lr[1e4]["score"] is None
    assert by_lr[0.01]["folds"] == 3
    assert result.counts() == {"ok": 2, "diverged": 1}
    assert "diverged" in result.format_table()


def test_trial_hyperparameters_reach_the_optimizer(tmp_path):
    base = {"optimizer": "sgd", "lr": 0.2, "epochs": 2, "n_samples": 80}
    plain = sweep.train_trial(base)
    heavy = sweep.train_trial(dict(base, momentum=0.9))
    assert plain["score"] != heavy["score"]
    assert sweep.train_trial(dict(base, momentum=0.0))["score"] == plain["score"]
    result = sweep.run_sweep([dict(base, gamma=1.0)], results=tmp_path / "r.jsonl",
                             executor="serial", retries=0, progress=False)
    assert result.records[0]["status"] == "error"
    assert "unknown hyperparameter 'gamma'" in result.records[0]["error"]


def test_process_pool_rebuilds_after_a_worker_dies(tmp_path):
    path = tmp_path / "results.jsonl"
    marker = str(tmp_path / "died")
    configs = [{"x": float(x), "marker": marker} for x in range(5)]
    result = sweep.run_sweep(configs, _die_first_time, path, executor="process", workers=2,
                             retries=2, progress=False)
    assert os.path.exists(marker)  # a worker really died
    ids = [r["trial_id"] for r in _lines(path)]
    assert sorted(ids) == sorted(sweep.trial_id(c) for c in configs)  # none lost or twice
    assert all(r["status"] == "ok" for r in result.records)
    assert max(r["attempts"] for r in result.records) == 2


def test_dask_local_cluster_survives_a_killed_worker(tmp_path):
    distributed = pytest.importorskip("distributed")
    cloudpickle = pytest.importorskip("cloudpickle")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    path = tmp_path / "results.jsonl"
    configs = [{"x": float(x), "sleep": 0.4} for x in range(6)]
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=50)
    client = distributed.Client(cluster)
    killed = []

    def kill_a_busy_worker(record):
        if killed:
            return
        busy = {w: tasks for w, tasks in client.processing().items() if tasks}
        pids = client.run(os.getpid)
        victim = min(busy)
        os.kill(pids[victim], signal.SIGKILL)
        killed.append((victim, list(busy[victim])))

    try:
        result = sweep.run_sweep(configs, _slow_objective, path, executor=client,
                                 progress=False, callback=kill_a_busy_worker)
        records = _lines(path)
        # the same sweep given the scheduler's address: a client of its own, then resume
        by_address = sweep.run_sweep(configs + [{"x": 9.0}], _slow_objective, path,
                                     executor=cluster.scheduler_address, progress=False)
    finally:
        client.close()
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert killed and killed[0][1], "a worker was killed while it ran a trial"
    ids = [r["trial_id"] for r in records]
    assert sorted(ids) == sorted(sweep.trial_id(c) for c in configs)  # none lost or twice
    assert all(r["status"] == "ok" for r in records)
    assert {r["x"] for r in records} == {c["x"] for c in configs}
    assert result.best()[0]["config"]["x"] == 3.0
    assert len({r["worker"] for r in records}) >= 2
    assert math.isclose(result.best()[0]["score"], 0.0)
    assert by_address.skipped == 6 and len(by_address) == 7


def test_k_fold_records_keep_every_fold_and_the_table_shows_them(tmp_path):
    config = {"optimizer": "adam", "lr": 0.01, "epochs": 2, "n_samples": 120, "cv": 3}
    out = sweep.train_trial(config)
    assert len(out["fold_scores"]) == 3 == out["folds"]
    assert out["score"] == pytest.approx(np.mean(out["fold_scores"]))
    assert out["fold_std"] == pytest.approx(np.std(out["fold_scores"]))
    assert len(set(out["fold_scores"])) == 3  # three different held-out folds
    result = sweep.run_sweep([config, dict(config, seed=1)], results=tmp_path / "r.jsonl",
                             executor="serial", progress=False)
    (row,) = result.summary()
    folds = [f for r in result.records for f in r["fold_scores"]]
    assert row["fold_scores"] == folds and row["fold_std"] == pytest.approx(np.std(folds))
    table = result.format_table()
    assert "mean ± std over folds" in table
    assert f"{np.mean(folds):.4f} ± {np.std(folds):.4f} (6)" in table


def test_a_results_file_of_another_sweep_is_refused_not_mixed(tmp_path):
    path = tmp_path / "results.jsonl"
    sweep.run_sweep([{"x": 1.0}], _slow_objective, path, executor="serial", progress=False)
    before = path.read_text()
    with pytest.raises(ValueError, match="already holds 1 trials of another sweep"):
        sweep.run_sweep([{"x": 2.0}], _slow_objective, path, executor="serial", progress=False)
    assert path.read_text() == before
    both = sweep.run_sweep([{"x": 2.0}], _slow_objective, path, executor="serial",
                           progress=False, extend=True)
    assert len(both) == 2


def test_a_bad_or_unreachable_scheduler_writes_nothing(tmp_path):
    pytest.importorskip("distributed")
    path = tmp_path / "deep" / "results.jsonl"
    with pytest.raises(ValueError, match="scheduler address"):
        sweep.run_sweep([{"x": 1.0}], _slow_objective, path, executor="notanaddress")
    assert sweep.is_scheduler_address("tcp://scheduler-host:8786")
    assert not sweep.is_scheduler_address("tcp://host:99999")
    import socket

    with socket.socket() as probe:  # a loopback port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(sweep.SchedulerError, match="cannot reach"):
        sweep.run_sweep([{"x": 1.0}], _slow_objective, path,
                        executor=f"tcp://127.0.0.1:{port}", connect_timeout=0.5)
    assert time.perf_counter() - start < 20  # the timeout is honoured, not Dask's 30 s
    assert not (tmp_path / "deep").exists()


def test_threaded_dask_workers_give_the_serial_sweep(tmp_path):
    distributed = pytest.importorskip("distributed")
    base = {"epochs": 2, "n_samples": 80, "hidden": "8"}
    configs = [dict(base, optimizer=o, lr=lr, seed=s) for o, lr in (("sgd", 0.1), ("adam", 0.01))
               for s in (0, 1)]
    serial = sweep.run_sweep(configs, results=tmp_path / "serial.jsonl", executor="serial",
                             progress=False)
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                       dashboard_address=None, silence_logs=50)
    client = distributed.Client(cluster)
    try:
        threaded = sweep.run_sweep(configs, results=tmp_path / "dask.jsonl", executor=client,
                                   progress=False)
    finally:
        client.close()
        cluster.close()
    by_id = {r["trial_id"]: r for r in serial.records}
    assert threaded.counts() == {"ok": 4}, [r.get("error") for r in threaded.records]
    for r in threaded.records:
        assert r["score"] == by_id[r["trial_id"]]["score"]
        assert r["fold_scores"] == by_id[r["trial_id"]]["fold_scores"]
