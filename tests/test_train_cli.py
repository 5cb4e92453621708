"""``tinygrad-opt train`` and ``lr-find``: the README's training commands learn, validation
by default and the test set on request, closure optimizers, schedules, Ctrl-C and
``--resume``, non-finite data files."""

import json
import math
import pathlib
import re
import shlex

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import cli, train
from tinygrad_opt.commands import _schedules
from tinygrad_opt.commands.train import TEST_REMINDER

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
QUIET = ["--quiet", "--no-progress"]


@pytest.fixture(autouse=True)
def no_pictures(monkeypatch):
    """Pictures cost most of a short run, and the README test of the study toolkit draws
    them; these tests check numbers and files."""
    monkeypatch.setattr("tinygrad_opt.commands._study.plots_or_none", lambda: None)


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _histories(folder):
    """{run folder name: history.json} of a train --out folder (one run or several)."""
    paths = [folder / "history.json"] if (folder / "history.json").exists() else \
        sorted(folder.glob("*/history.json"))
    return {p.parent.name: json.loads(p.read_text()) for p in paths}


def _readme_train_commands():
    lines = [line.split("#")[0].strip() for line in README.read_text().splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("tinygrad-opt train ")]


def test_the_readme_train_commands_reach_95_percent(tmp_path, capsys):
    commands = _readme_train_commands()
    assert len(commands) >= 2
    for k, argv in enumerate(commands):
        out_dir = tmp_path / str(k)
        code, _, err = run(capsys, *argv, "--out", out_dir, *QUIET)
        assert code == 0, err
        histories = _histories(out_dir)
        best = max(h["history"]["val_acc"][-1] for h in histories.values())
        assert best >= 0.95, (argv, best)
        if len(histories) > 1:  # the comparison: full-batch L-BFGS reaches the lowest loss
            final = {name: h["iteration_loss"][-1] for name, h in histories.items()}
            assert min(final, key=final.get) == "lbfgs-max_iter=20-full-batch", final


def test_validation_by_default_and_the_test_set_on_request(tmp_path, capsys):
    argv = ["train", "--epochs", "2", "--samples", "120", "--out", tmp_path, *QUIET]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "val acc" in out and "test loss" not in out and "test:" not in out
    code, out, _ = run(capsys, *argv, "--test")
    assert code == 0 and "test loss" in out and "test acc" in out
    assert out.count(TEST_REMINDER) == 1 and "never touch the test set" in TEST_REMINDER


@pytest.mark.parametrize("argv", [
    ["--optimizer", "lbfgs", "--batch-size", "full"],
    ["--optimizer", "bfgs", "--batch-size", "full"],
    ["--optimizer", "newton-cg", "--batch-size", "32"],
    ["--optimizer", "lm", "--data", "sine", "--batch-size", "full"],
], ids=lambda a: " ".join(a))
def test_closure_optimizers_train(tmp_path, capsys, argv):
    code, _, err = run(capsys, "train", *argv, "--epochs", "3", "--samples", "60",
                         "--hidden", "4", "--out", tmp_path, *QUIET)
    assert code == 0, err
    history = _histories(tmp_path)[tmp_path.name]
    losses = history["iteration_loss"]
    assert len(losses) == (3 if "full" in argv else 3 * 2) and losses[-1] < losses[0]


def test_a_classifier_has_no_residual_for_lm(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--optimizer", "lm", "--samples", "40", "--out",
                       tmp_path / "o", *QUIET)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--optimizer lm" in err and "no residual form" in err
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_a_nan_in_the_data_file_is_named_by_row(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(30, 2))
    X[4, 1] = np.nan
    path = tmp_path / "nan.csv"
    np.savetxt(path, np.c_[X, np.arange(30) % 2], delimiter=",", header="a,b,label",
               comments="")
    code, _, err = run(capsys, "train", "--data", path, "--out", tmp_path / "o", *QUIET)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "data row 5 (counting from 1" in err and "nan in its inputs" in err
    assert "lower the learning rate" not in err
    assert not (tmp_path / "o").exists()


def _interrupt_after(epoch, monkeypatch):
    """Make the next fit raise KeyboardInterrupt (as Ctrl-C) after ``epoch`` epochs."""
    real_fit = train.fit

    def stop(history, model, optimizer):
        if history.epochs == epoch:
            raise KeyboardInterrupt

    def fit(*args, callbacks=(), **kwargs):
        return real_fit(*args, callbacks=[*callbacks, stop], **kwargs)

    monkeypatch.setattr(train, "fit", fit)


def test_ctrl_c_keeps_the_work_and_resume_continues_exactly(tmp_path, capsys, monkeypatch):
    argv = ["train", "--epochs", "5", "--samples", "100", "--optimizer", "sgd:momentum=0.9",
            "--lr", "0.1", "--schedule", "warmup:2+cosine", *QUIET]
    assert run(capsys, *argv, "--out", tmp_path / "straight")[0] == 0

    interrupted = tmp_path / "interrupted"
    _interrupt_after(3, monkeypatch)
    code, out, _ = run(capsys, *argv, "--out", interrupted)
    monkeypatch.undo()
    assert code == 130
    assert f"--resume {interrupted}" in out
    saved = _histories(interrupted)["interrupted"]
    assert saved["history"]["epoch"] == [1, 2, 3]  # what existed is kept
    assert (interrupted / "model.npz").exists()
    assert list(tg.load(interrupted / "checkpoint.npz")["history"]["epoch"]) == [1, 2]

    code, out, err = run(capsys, "train", "--resume", interrupted, *QUIET)
    assert code == 0, err
    straight, resumed = (_histories(tmp_path / d)[d] for d in ("straight", "interrupted"))
    for key in ("epoch", "train_loss", "val_loss", "lr"):
        assert resumed["history"][key] == straight["history"][key], key
    assert resumed["iteration_loss"] == straight["iteration_loss"]
    a, b = (tg.load(tmp_path / d / "model.npz") for d in ("straight", "interrupted"))
    for name in a:
        np.testing.assert_array_equal(a[name].numpy(), b[name].numpy())

    code, _, err = run(capsys, "train", "--resume", tmp_path / "nothing", *QUIET)
    assert code == 2 and "no run.json" in err


@pytest.mark.parametrize("spec,expected", [
    ("inverse-time:decay=0.5", lambda e, n: 1 / (1 + 0.5 * e)),
    ("inverse-sqrt", lambda e, n: 1 / math.sqrt(e + 1)),
    ("linear", lambda e, n: 1 - e / n),
    ("multistep:milestones=2-5,gamma=0.1", lambda e, n: 0.1 ** ((e >= 2) + (e >= 5))),
    ("cosine", lambda e, n: (1 + math.cos(math.pi * e / n)) / 2),
    ("warmup:3+linear", lambda e, n: e / 3 if e < 3 else 1 - (e - 3) / (n - 3)),
    ("warmup:2+inverse-time:decay=1", lambda e, n: e / 2 if e < 2 else 1 / (e - 1)),
], ids=lambda x: x if isinstance(x, str) else "")
def test_schedules_follow_their_formulas(spec, expected):
    n = 8
    np.testing.assert_allclose(_schedules.lrs(spec, 1.0, n), [expected(e, n) for e in range(n)],
                               rtol=1e-12, atol=1e-15)


def test_train_uses_the_schedule_and_refuses_a_bad_one(tmp_path, capsys):
    spec = "warmup:2+multistep:milestones=1-2,gamma=0.5"
    code, _, err = run(capsys, "train", "--epochs", "5", "--samples", "60", "--lr", "0.1",
                       "--schedule", spec, "--out", tmp_path, *QUIET)
    assert code == 0, err
    lrs = _histories(tmp_path)[tmp_path.name]["history"]["lr"]
    np.testing.assert_allclose(lrs, _schedules.lrs(spec, 0.1, 5), rtol=1e-12)
    for bad, message in (("multistep", "needs its epochs"), ("warmup:3+plateau", "warmup"),
                         ("cosine:gamma=2", "cosine takes no settings"), ("nope", "unknown")):
        code, _, err = run(capsys, "train", "--schedule", bad, "--out", tmp_path, *QUIET)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_lr_find_draws_a_schedule_from_its_suggestion(tmp_path, capsys):
    code, out, err = run(capsys, "lr-find", "--optimizer", "adam", "--num-iter", "40",
                         "--samples", "100", "--schedule", "warmup:2+cosine", "--epochs", "10",
                         "--out", tmp_path, "--no-progress")
    assert code == 0, err
    found = json.loads((tmp_path / "lr_finder.json").read_text())
    if found["suggestion"] is None:  # no suggestion: nothing to schedule, and it says why
        assert found["schedule"] is None and found["message"]
        return
    np.testing.assert_allclose(found["schedule"]["lrs"],
                               _schedules.lrs("warmup:2+cosine", found["suggestion"], 10))
    assert "--schedule warmup:2+cosine --epochs 10" in out


@pytest.mark.parametrize("command", ["train", "lr-find"])
def test_help_gives_every_default(command):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        if action.option_strings and action.default not in (None, False, "==SUPPRESS=="):
            assert "default" in action.help or re.search(r"\([^()]+\)$", action.help), \
                action.option_strings


def test_train_with_jit_writes_the_same_history(tmp_path, capsys):
    runs = {}
    for flag in ([], ["--jit"]):
        out = tmp_path / ("jit" if flag else "eager")
        code, _out, err = run(capsys, "train", "--epochs", 3, "--out", out, *QUIET, *flag)
        assert code == 0, err
        saved = _histories(out)[out.name]
        del saved["history"]["time"]  # the one thing that may differ
        runs[bool(flag)] = saved
    assert runs[True] == runs[False]
