"""Hyperparameter sweeps: grid and random search, on a process pool or a Dask cluster.

    space = {"optimizer": ["sgd", "momentum", "adam"], "lr": LogUniform(1e-4, 1),
             "seed": [0, 1, 2]}
    configs = random_configs(space, n=30, seed=0)          # or grid_configs(space)
    result = run_sweep(configs, results="runs/sweep/results.jsonl")
    print(result.format_table())

**Search** (the lecture's hyperparameter tuning): a *space* maps names to a list
of values (a choice) or a distribution: :class:`LogUniform` for learning rates
(log lr uniform, so 1e-4..1e-3 is as likely as 0.1..1) and :class:`Uniform`.
:func:`grid_configs` takes every combination (a distribution contributes
``n`` log-/evenly spaced values); :func:`random_configs` draws ``n`` configurations
(Bergstra & Bengio 2012: for the same budget random search covers each important
dimension with more distinct values than a grid).

**The trial** (:func:`train_trial`, the default objective) trains an MLP on a toy
data set and scores it on a *validation split* (the test split is never looked
at) or by *k-fold cross validation* (``cv=k``: k models, each validated on the
fold it did not see; the record keeps every fold's score in ``fold_scores`` and the
score is their mean, reported with the standard deviation over the folds). Lower is
better (validation loss).

**Running**: each configuration gets a stable id (a hash of its JSON), and runs
as one call of the objective

* on a local ``concurrent.futures.ProcessPoolExecutor`` (default), or
* on a Dask cluster when ``executor`` is a scheduler address (``"tcp://host:8786"``)
  or a ``distributed.Client`` (the ``dist`` extra) -- the same objective, submitted
  with ``client.submit(..., retries=retries)``; no scheduler of our own. An address
  is checked before anything is written, and connecting gives up after
  ``connect_timeout`` seconds (a :class:`SchedulerError`, results file untouched);
* or in this process (``executor="serial"``), for debugging.

Each finished trial is appended *at once* to a JSON-lines results file by this
process alone (one ``write`` on an ``O_APPEND`` descriptor, then ``fsync``), so an
interrupted sweep loses at most the trials that were running; :func:`run_sweep`
skips the ids already in the file with status ``ok`` or ``diverged`` (resume), and
a partial last line left by a crash is cut off. A file that holds trials of another
sweep (ids not among ``configs``) is refused, not silently mixed in
(``extend=True`` adds to it on purpose). A trial whose loss becomes NaN or
infinite is recorded as ``diverged`` (score null) and never stops the sweep.
A trial that raises is retried ``retries`` times, then recorded as ``error``
(retried on the next resume). A worker process that dies takes its running trial
with it: Dask reschedules it on another worker (the scheduler's
``allowed-failures``), and the process pool is rebuilt and the lost trials
resubmitted (at most ``retries`` times each).
"""

import hashlib
import itertools
import json
import math
import os
import re
import socket
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import numpy as np

import tinygrad_opt as tg

from .. import data, nn
from ..data import KFold, train_val_test_split
from ..train import DivergenceError, fit, progress_bar
from . import specs
from .race import format_rows

__all__ = [
    "DATASETS",
    "LogUniform",
    "SchedulerError",
    "SweepResult",
    "Uniform",
    "grid_configs",
    "is_scheduler_address",
    "load_results",
    "random_configs",
    "run_sweep",
    "train_trial",
    "trial_id",
]

FINISHED = ("ok", "diverged")


# -- search spaces ------------------------------------------------------------------------------


class LogUniform:
    """log(x) uniform on [log lo, log hi]: the distribution for learning rates.
    In a grid it contributes ``n`` log-spaced values."""

    def __init__(self, lo, hi, n=5):
        if not 0 < lo < hi:
            raise ValueError(f"LogUniform: need 0 < lo < hi, got lo={lo}, hi={hi}.")
        self.lo, self.hi, self.n = float(lo), float(hi), int(n)

    def sample(self, rng):
        return float(math.exp(rng.uniform(math.log(self.lo), math.log(self.hi))))

    def grid(self):
        return [float(v) for v in np.geomspace(self.lo, self.hi, self.n)]

    def __repr__(self):
        return f"LogUniform({self.lo:g}, {self.hi:g})"


class Uniform:
    """x uniform on [lo, hi]; in a grid, ``n`` evenly spaced values."""

    def __init__(self, lo, hi, n=5):
        if not lo < hi:
            raise ValueError(f"Uniform: need lo < hi, got lo={lo}, hi={hi}.")
        self.lo, self.hi, self.n = float(lo), float(hi), int(n)

    def sample(self, rng):
        return float(rng.uniform(self.lo, self.hi))

    def grid(self):
        return [float(v) for v in np.linspace(self.lo, self.hi, self.n)]

    def __repr__(self):
        return f"Uniform({self.lo:g}, {self.hi:g})"


def _values(name, spec):
    if isinstance(spec, (LogUniform, Uniform)):
        return spec.grid()
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ValueError(f"search space: {name!r} has no values.")
        return list(spec)
    return [spec]


def _round(value):
    """Floats to 6 significant digits (readable ids and tables)."""
    return float(f"{value:.6g}") if isinstance(value, float) else value


def grid_configs(space):
    """Every combination of the space's values (lists; a distribution gives its grid)."""
    names = list(space)
    choices = [_values(n, space[n]) for n in names]
    return [{n: _round(v) for n, v in zip(names, combo)} for combo in itertools.product(*choices)]


def random_configs(space, n, seed=0):
    """``n`` configurations drawn from the space: a list is a uniform choice, a
    distribution is sampled, a plain value is fixed. Seeded; duplicates are dropped."""
    if n < 1:
        raise ValueError(f"random_configs: n={n} must be at least 1.")
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    for _ in range(n):
        config = {}
        for name, spec in space.items():
            if isinstance(spec, (LogUniform, Uniform)):
                config[name] = _round(spec.sample(rng))
            elif isinstance(spec, (list, tuple)):
                config[name] = _plain(spec[int(rng.integers(len(spec)))])
            else:
                config[name] = spec
        key = trial_id(config)
        if key not in seen:
            seen.add(key)
            out.append(config)
    return out


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def trial_id(config):
    """A stable 12-hex-digit id: the SHA-1 of the configuration's canonical JSON."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


# -- the default trial ------------------------------------------------------------------------

DATASETS = ("moons", "circles", "spirals", "xor", "blobs")
_TRIAL_KEYS = {"optimizer": "adam", "lr": None, "dataset": "moons", "n_samples": 300,
               "noise": 0.2, "hidden": "16-16", "activation": "tanh", "epochs": 20,
               "batch_size": 32, "seed": 0, "data_seed": 0, "cv": 0, "val_size": 0.25,
               "diverge_factor": 10.0, "jit": False}


def _dataset(name, n, noise, seed):
    makers = {"moons": data.make_moons, "circles": data.make_circles,
              "spirals": data.make_spirals, "xor": data.make_xor}
    if name == "blobs":
        return data.make_blobs(n, centers=3, seed=seed)
    if name not in makers:
        raise ValueError(f"train_trial: unknown dataset {name!r}; use one of "
                         f"{', '.join(DATASETS)}.")
    return makers[name](n, noise=noise, seed=seed)


def _hidden(spec):
    if isinstance(spec, (list, tuple)):
        return [int(h) for h in spec]
    if isinstance(spec, int):
        return [spec]
    return [int(h) for h in str(spec).split("-") if h]


# Dask workers run trials on threads: seeding the default generator and drawing a
# model's initial weights from it must not interleave with another trial's.
_INIT_LOCK = threading.Lock()


def train_trial(config):
    """Train an MLP as ``config`` says and score it on held-out data; returns a dict.

    Keys (defaults in brackets): ``optimizer`` [adam] (a name or ``name:key=value``),
    ``lr`` [the optimizer's default], any other hyperparameter of that optimizer
    (``momentum``, ``weight_decay``, ...), ``dataset`` [moons], ``n_samples`` [300],
    ``noise`` [0.2], ``hidden`` ["16-16"], ``activation`` [tanh], ``epochs`` [20],
    ``batch_size`` [32], ``seed`` [0] (initialisation and shuffling), ``data_seed``
    [0] (the data and the split: the same for every trial), ``cv`` [0: a validation
    split of ``val_size`` = 0.25; k >= 2: k-fold cross validation],
    ``diverge_factor`` [10], ``jit`` [False: True captures each training step with
    ``tg.jit``; the same scores, in less time].

    Returns ``{"score": mean validation loss, "val_loss", "val_acc", "train_loss",
    "folds", "fold_scores" (each fold's validation loss), "fold_std" (their standard
    deviation; 0 for a single split)}``, or ``{"status": "diverged", "score": None, ...}`` when the loss
    became NaN or infinite, or when the last epoch's training loss is more than
    ``diverge_factor`` times the loss of the first mini-batch (it blew up, even if
    float arithmetic has not overflowed yet).
    """
    cfg = dict(_TRIAL_KEYS)
    cfg.update(config)
    spec = specs.parse(str(cfg["optimizer"]))
    extra = {k: v for k, v in config.items() if k not in _TRIAL_KEYS}
    if cfg["lr"] is not None:
        extra["lr"] = cfg["lr"]
    if extra:
        spec = specs.parse(spec.name + ":" + ",".join(f"{k}={v}" for k, v in
                                                        {**spec.given, **extra}.items()))
    X, y = _dataset(cfg["dataset"], int(cfg["n_samples"]), float(cfg["noise"]),
                    int(cfg["data_seed"]))
    n_classes = int(y.max()) + 1
    (Xtr, ytr), (Xva, yva), _ = train_val_test_split(X, y, val_size=float(cfg["val_size"]),
                                                     test_size=0.2, seed=int(cfg["data_seed"]))
    if int(cfg["cv"]) >= 2:
        Xall, yall = np.concatenate([Xtr, Xva]), np.concatenate([ytr, yva])
        folds = [((Xall[a], yall[a]), (Xall[b], yall[b])) for a, b in
                 KFold(int(cfg["cv"]), shuffle=True, seed=int(cfg["data_seed"])).split(Xall)]
    else:
        folds = [((Xtr, ytr), (Xva, yva))]
    sizes = [X.shape[1]] + _hidden(cfg["hidden"]) + [n_classes]
    results = []
    started = time.perf_counter()
    for k, (train, val) in enumerate(folds):
        with _INIT_LOCK:
            tg.manual_seed(int(cfg["seed"]) * 1000 + k)
            model = nn.MLP(sizes, activation=cfg["activation"])
        optimizer = spec.build(model.parameters())
        try:
            with np.errstate(all="ignore"):
                history = fit(model, nn.functional.cross_entropy, optimizer, train, val,
                              epochs=int(cfg["epochs"]), batch_size=int(cfg["batch_size"]),
                              seed=int(cfg["seed"]), progress=False, jit=bool(cfg["jit"]))
        except DivergenceError as error:
            return {"status": "diverged", "score": None, "message": str(error),
                    "fold": k, "seconds": time.perf_counter() - started}
        val_loss = history.val_loss[-1]
        first, last = history.iteration_loss[0], history.train_loss[-1]
        if not math.isfinite(val_loss) or last > float(cfg["diverge_factor"]) * first:
            return {"status": "diverged", "score": None, "fold": k,
                    "message": f"the loss blew up from {first:.4g} to {last:.4g}",
                    "seconds": time.perf_counter() - started}
        results.append((val_loss, history.val_acc[-1], history.train_loss[-1]))
    v = np.asarray(results)
    return {"score": float(v[:, 0].mean()), "val_loss": float(v[:, 0].mean()),
            "val_acc": float(v[:, 1].mean()), "train_loss": float(v[:, 2].mean()),
            "folds": len(folds), "fold_scores": [float(f) for f in v[:, 0]],
            "fold_std": float(v[:, 0].std()), "seconds": time.perf_counter() - started}


# -- results file ------------------------------------------------------------------------------


def _json_safe(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _repair(path):
    """Cut a partial last line (a crash in the middle of a write) off the file."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


def load_results(path):
    """The records of a results file (lines that are not complete JSON are skipped)."""
    records = []
    if not os.path.exists(path):
        return records
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "trial_id" in record:
                records.append(record)
    return records


class _Appender:
    """One O_APPEND descriptor; each record is one write() followed by fsync."""

    def __init__(self, path):
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        _repair(path)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record):
        line = json.dumps(_json_safe(record), sort_keys=True, allow_nan=False) + "\n"
        os.write(self.fd, line.encode("utf-8"))
        os.fsync(self.fd)

    def close(self):
        os.close(self.fd)


# -- running ------------------------------------------------------------------------------------


def _call(objective, config):
    """Run one trial (in a worker): the objective's dict plus who ran it and how long."""
    started = time.time()
    out = objective(config)
    if not isinstance(out, dict):
        out = {"score": float(out)}
    out = dict(out)
    out.setdefault("worker", f"{socket.gethostname()}:{os.getpid()}")
    out.setdefault("seconds", time.time() - started)
    return out


def _record(tid, config, out, attempts):
    status = out.pop("status", None)
    score = out.pop("score", None)
    if status is None:
        status = "ok" if score is not None and math.isfinite(float(score)) else "diverged"
    return {"trial_id": tid, "config": config, "status": status,
            "score": None if score is None else float(score), "attempts": attempts,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **out}


def _error_record(tid, config, error, attempts):
    return {"trial_id": tid, "config": config, "status": "error", "score": None,
            "attempts": attempts, "error": f"{type(error).__name__}: {error}",
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


class SchedulerError(OSError):
    """The Dask scheduler could not be reached (nothing was written)."""


# tcp://host:8786, tls://10.1.2.3:8786, [::1]:8786, host:8786 (Dask's default protocol is tcp)
_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ucx|ws|wss)://)?(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+)"
                      r":(\d{1,5})$")


def is_scheduler_address(text):
    """Whether ``text`` reads as a Dask scheduler address (protocol://host:port or
    host:port, port 1..65535): checked before anything is created."""
    match = _ADDRESS.match(str(text))
    return bool(match) and 0 < int(match.group(1)) < 65536


def _kind(executor):
    """"serial", "process" or "dask" for a valid ``executor``; ValueError otherwise."""
    if executor in ("serial", "process", None):
        return executor or "process"
    if isinstance(executor, str):
        if is_scheduler_address(executor):
            return "dask"
    elif type(executor).__name__ == "Client" and hasattr(executor, "submit"):
        return "dask"
    raise ValueError(f"run_sweep: executor={executor!r} must be 'process', 'serial', a Dask "
                     "scheduler address (tcp://host:port) or a distributed.Client.")


def _connect(address, timeout):
    """A ``distributed.Client`` of the scheduler at ``address``, or SchedulerError after
    ``timeout`` seconds."""
    try:
        from distributed import Client  # optional (the dist extra)
    except ImportError:  # pragma: no cover - the dist extra is installed in development
        raise ImportError("a Dask sweep needs dask.distributed: pip install "
                          "'tinygrad-opt[dist]'.") from None
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise SchedulerError(f"cannot reach the Dask scheduler at {address} within "
                             f"{timeout:g} s ({type(error).__name__}); is it running, and is "
                             "the address right?") from None


def run_sweep(configs, objective=train_trial, results="runs/sweep/results.jsonl",
              executor="process", workers=None, retries=2, progress=True, callback=None,
              connect_timeout=10.0, extend=False):
    """Run ``objective(config)`` for every configuration not finished in ``results``.

    Args:
        configs: a list of dicts (JSON-able values); duplicates run once.
        objective: a picklable function config -> dict with ``score`` (lower is better)
            and any other numbers, or ``status="diverged"``.
        results: the JSON-lines file (appended; read first to resume).
        executor: ``"process"`` (a local process pool of ``workers`` processes),
            ``"serial"`` (this process), a Dask scheduler address or a
            ``distributed.Client``.
        workers: pool size (default: the CPU count).
        retries: extra attempts for a trial that raises or loses its worker.
        progress: a tqdm bar over the trials (on a terminal).
        callback: ``callback(record)`` after each record is written.
        connect_timeout: seconds to wait for a Dask scheduler given by its address.
        extend: allow a results file that already holds trials of another sweep.

    Returns a :class:`SweepResult` over every record in the file.
    """
    kind = _kind(executor)
    unique, seen = [], set()
    for config in configs:
        tid = trial_id(config)
        if tid not in seen:
            seen.add(tid)
            unique.append((tid, config))
    previous = load_results(results)
    foreign = {r["trial_id"] for r in previous} - seen
    if foreign and not extend:
        raise ValueError(f"run_sweep: {os.fspath(results)} already holds {len(foreign)} trials "
                         "of another sweep (configurations not in this one); give a new "
                         "results file, delete it, or pass extend=True to add to it.")
    done = {r["trial_id"] for r in previous if r.get("status") in FINISHED}
    todo = [(tid, c) for tid, c in unique if tid not in done]
    client = None
    if todo and kind == "dask" and isinstance(executor, str):
        client = _connect(executor, connect_timeout)  # before anything is written
    appender = _Appender(results)
    bar = _bar(progress, len(todo))

    def emit(record):
        appender.write(record)
        if bar is not None:
            bar.update(1)
            if record.get("score") is not None:
                bar.set_postfix_str(f"last {record['score']:.4g}")
        if callback is not None:
            callback(record)

    try:
        if not todo:
            pass
        elif kind == "serial":
            _run_serial(todo, objective, retries, emit)
        elif kind == "dask":
            _run_dask(todo, objective, retries, emit, client or executor)
        else:
            _run_pool(todo, objective, retries, emit, workers)
    finally:
        appender.close()
        if client is not None:
            client.close()
        if bar is not None:
            bar.close()
    return SweepResult(load_results(results), skipped=len(unique) - len(todo))


def _bar(enabled, total):
    bar = progress_bar(enabled, total)
    if bar is not None:
        bar.set_description("trials")
    return bar


def _run_serial(todo, objective, retries, emit):
    for tid, config in todo:
        for attempt in range(1, retries + 2):
            try:
                out = _call(objective, config)
            except Exception as error:  # noqa: BLE001 - a trial's failure is data
                if attempt > retries:
                    emit(_error_record(tid, config, error, attempt))
            else:
                emit(_record(tid, config, out, attempt))
                break


def _run_pool(todo, objective, retries, emit, workers):
    workers = workers or os.cpu_count() or 1
    attempts = {tid: 0 for tid, _ in todo}
    pending = list(todo)
    while pending:
        pool = ProcessPoolExecutor(max_workers=workers)
        try:
            pending = _pool_round(pool, pending, attempts, objective, retries, emit)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def _pool_round(pool, pending, attempts, objective, retries, emit):
    """Submit ``pending`` to ``pool``; returns the trials to run again on a fresh pool."""
    futures = {}
    for tid, config in pending:
        attempts[tid] += 1
        futures[pool.submit(_call, objective, config)] = (tid, config)
    again = []
    remaining = set(futures)
    while remaining:
        finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
        broken = False
        for future in finished:
            tid, config = futures[future]
            error = future.exception()
            if error is None:
                emit(_record(tid, config, future.result(), attempts[tid]))
                continue
            broken = broken or isinstance(error, BrokenProcessPool)
            if attempts[tid] <= retries:
                again.append((tid, config))
            else:
                emit(_error_record(tid, config, error, attempts[tid]))
        if broken:  # the pool is dead: whatever was still running goes around again
            for future in remaining:
                tid, config = futures[future]
                if attempts[tid] <= retries:
                    again.append((tid, config))
                else:
                    emit(_error_record(tid, config, BrokenProcessPool("a worker process died"),
                                       attempts[tid]))
            break
    return again


def _run_dask(todo, objective, retries, emit, client):
    from distributed import as_completed  # optional (the dist extra)

    token = os.urandom(4).hex()
    trials = {}
    futures = []
    try:
        for tid, config in todo:
            future = client.submit(_call, objective, config, key=f"trial-{tid}-{token}",
                                   retries=retries, pure=False)
            trials[future.key] = (tid, config)
            futures.append(future)
        for future in as_completed(futures):
            tid, config = trials[future.key]
            try:
                out = future.result()
            except Exception as error:  # noqa: BLE001 - includes KilledWorker
                emit(_error_record(tid, config, error, retries + 1))
            else:
                emit(_record(tid, config, out, None))
            future.release()
    except BaseException:
        client.cancel(futures)
        raise


# -- results ------------------------------------------------------------------------------------


class SweepResult:
    """The records of a sweep (every line of the results file).

    ``records``: dicts with ``trial_id``, ``config``, ``status``, ``score`` and the
    objective's numbers; ``skipped``: trials found finished in the file (resume).
    """

    def __init__(self, records, skipped=0):
        # a trial may appear twice if a resumed sweep re-ran an errored one: keep the last
        latest = {}
        for r in records:
            latest[r["trial_id"]] = r
        self.records = list(latest.values())
        self.skipped = skipped

    def __len__(self):
        return len(self.records)

    def ok(self):
        return [r for r in self.records if r["status"] == "ok"]

    def counts(self):
        """{status: number of trials}."""
        out = {}
        for r in self.records:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    def best(self, k=1):
        """The ``k`` finished trials with the lowest score."""
        return sorted(self.ok(), key=lambda r: r["score"])[:k]

    def summary(self, ignore=("seed",)):
        """Trials grouped by their configuration without ``ignore`` (the seeds): one row
        per group with the mean and standard deviation of the score over the seeds, every
        fold's score of its k-fold trials (``fold_scores``) and their standard deviation
        (``fold_std``), how many finished and how many diverged; sorted by mean score."""
        groups = {}
        for r in self.records:
            key = json.dumps({k: v for k, v in r["config"].items() if k not in ignore},
                             sort_keys=True)
            groups.setdefault(key, []).append(r)
        rows = []
        for key, members in groups.items():
            scores = [m["score"] for m in members if m["status"] == "ok"]
            folds = [f for m in members if m["status"] == "ok"
                     for f in m.get("fold_scores") or ()]
            rows.append({"config": json.loads(key), "n": len(members),
                         "fold_scores": folds,
                         "fold_std": float(np.std(folds)) if len(folds) > 1 else 0.0,
                         "diverged": sum(m["status"] == "diverged" for m in members),
                         "errors": sum(m["status"] == "error" for m in members),
                         "mean": float(np.mean(scores)) if scores else math.inf,
                         "std": float(np.std(scores)) if len(scores) > 1 else 0.0,
                         "val_acc": float(np.mean([m.get("val_acc", math.nan) for m in members
                                                   if m["status"] == "ok"]))
                         if scores else math.nan})
        return sorted(rows, key=lambda r: r["mean"])

    def format_table(self, top=10):
        rows = self.summary()
        keys = []
        for r in rows:
            for k in r["config"]:
                if k not in keys:
                    keys.append(k)
        # settings shared by every trial go in the title, not in a column
        fixed = {k: rows[0]["config"].get(k) for k in keys
                 if len({json.dumps(r["config"].get(k)) for r in rows}) == 1} if rows else {}
        keys = [k for k in keys if k not in fixed]
        k_fold = any(len(r["fold_scores"]) > r["n"] for r in rows)
        head = keys + ["score (mean ± std over seeds)"]
        head += ["folds (mean ± std over folds)"] if k_fold else []
        head += ["val_acc", "runs", "diverged"]
        body = []
        for r in rows[:top]:
            cells = [_cell(r["config"].get(k)) for k in keys]
            score = "diverged" if not math.isfinite(r["mean"]) else \
                f"{r['mean']:.4f} ± {r['std']:.4f}"
            cells.append(score)
            if k_fold:
                folds = r["fold_scores"]
                cells.append(f"{np.mean(folds):.4f} ± {r['fold_std']:.4f} ({len(folds)})"
                             if folds else "—")
            acc = "—" if math.isnan(r["val_acc"]) else f"{r['val_acc']:.3f}"
            body.append(cells + [acc, str(r["n"]), str(r["diverged"])])
        c = self.counts()
        title = (f"sweep: {len(self.records)} trials ({', '.join(f'{v} {k}' for k, v in c.items())})"
                 + (f"; {self.skipped} already in the results file" if self.skipped else "")
                 + ("\nfixed: " + ", ".join(f"{k}={v}" for k, v in fixed.items())
                    if fixed else ""))
        return title + "\n" + format_rows(head, body)


def _cell(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return "—" if v is None else str(v)
