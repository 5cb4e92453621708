"""Every study subcommand at tiny settings: files written, tables with the expected rows,
one-line errors with exit code 2 for bad arguments."""

import contextlib
import io
import json
import os
import shutil
import subprocess

import pytest
from study_report_check import check_html, decode_image

from tinygrad_opt.cli import main

COMMANDS = ("demo", "train", "race", "hessian", "lr-find", "sweep", "gradcheck", "compare")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", COMMANDS)
def test_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and "usage: tinygrad-opt" in out and "--" in out


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["demo", "--quick", "--out", str(folder), "--no-progress"])
    return code, folder, out.getvalue()


def test_demo_writes_a_well_formed_report_with_its_pictures(demo):
    code, folder, _ = demo
    assert code == 0
    text = (folder / "report.html").read_text(encoding="utf-8")
    checker, problems = check_html(text)
    assert problems == []
    kinds = [decode_image(src)[0] for src in checker.images]
    assert kinds.count("image/gif") == 1 and kinds.count("image/png") >= 10
    for name in ("race_rosenbrock.png", "race_quadratic.png", "spectrum.png",
                 "edge_of_stability.png", "lr_finder.png", "schedules.png",
                 "decision_boundaries.png", "race_rosenbrock.gif"):
        assert (folder / name).stat().st_size > 1000
    for heading in ("Training an MLP", "compute graph", "Race on Rosenbrock",
                    "Race on ill-conditioned quadratic", "Hessian lab", "Learning rates"):
        assert heading in text
    if shutil.which("dot"):
        assert "image/svg+xml" in kinds and (folder / "graph.svg").exists()
    # section text, captions and table headers start with a capital (or a symbol or digit)
    import html as html_lib
    import re

    for tag in ("h2", "p", "th", "figcaption"):
        for inner in re.findall(rf"<{tag}[^>]*>(.*?)</{tag}>", text, re.DOTALL):
            words = html_lib.unescape(re.sub(r"<[^>]+>", "", inner)).strip()
            assert not words[:1].islower(), f"<{tag}> starts in lower case: {words[:60]!r}"
    assert "symmetric log" not in text and "histogram of log10|λ|" in text
    from PIL import Image

    with Image.open(folder / "race_rosenbrock.gif") as gif:
        assert gif.size[0] >= 800


def test_demo_prints_the_summary_tables(demo):
    code, folder, out = demo
    assert code == 0
    for label in ("sgd (lr 0.1)", "momentum (lr 0.01)", "rmsprop (lr 0.01)", "adam (lr 0.01)"):
        assert label in out
    race_rows = [line.split()[0] for line in out.split("Race on rosenbrock:")[1]
                 .split("Race on quadratic:")[0].strip().splitlines()[2:]]
    assert race_rows == ["sgd", "momentum", "nesterov", "adam", "rmsprop", "newton", "bfgs",
                         "lbfgs", "lm"]
    assert "Hessian lab:" in out and f"report: {folder}" in out


def test_race(tmp_path, capsys):
    code, out, _ = run(capsys, "race", "--landscape", "booth", "--optimizers",
                       "sgd:lr=0.05,newton,lm", "--steps", "8", "--gif", "--out",
                       str(tmp_path), "--no-progress")
    assert code == 0
    rows = [line.split()[0] for line in out.splitlines()[3:6]]
    assert rows == ["sgd", "newton", "lm"]
    for name in ("race.json", "contour.png", "curves.png", "race.gif"):
        assert (tmp_path / name).exists()
    data = json.loads((tmp_path / "race.json").read_text())
    assert [r["optimizer"] for r in data["table"]] == ["sgd lr=0.05", "newton", "lm"]
    assert data["table"][1]["steps_to_tol"] == 1
    code, out, _ = run(capsys, "race", "--list")
    assert code == 0 and "rosenbrock" in out and "lbfgs" in out


def test_train(tmp_path, capsys):
    code, out, _ = run(capsys, "train", "--epochs", "2", "--samples", "120", "--quiet",
                       "--schedule", "cosine", "--out", str(tmp_path), "--no-progress")
    assert code == 0
    table = out[out.index("train loss"):out.index("wrote ")]
    assert "val loss" in table and "val acc" in table
    assert "test" not in table  # the test split only on request (--test)
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["history"]["epoch"] == [1, 2]
    for name in ("model.npz", "loss.png", "curves.png", "boundary.png"):
        assert (tmp_path / name).exists()


def test_train_reads_a_csv_file(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    path = tmp_path / "points.csv"
    np.savetxt(path, np.c_[X, y], delimiter=",", header="a,b,c,label", comments="")
    code, out, _ = run(capsys, "train", "--data", str(path), "--epochs", "1", "--quiet",
                       "--out", str(tmp_path / "o"), "--no-progress")
    assert code == 0 and "3-16-16-2 MLP" in out


def test_hessian(tmp_path, capsys):
    code, out, _ = run(capsys, "hessian", "--samples", "40", "--hidden", "4",
                       "--train-epochs", "2", "--hutchinson", "10", "--eos", "0.5",
                       "--eos-steps", "20", "--out", str(tmp_path), "--no-progress")
    assert code == 0
    for row in ("λmax (exact)", "κ = λmax/λmin⁺", "negative eigenvalues", "by Lanczos",
                "by Hutchinson", "edge of stability"):
        assert row in out
    result = json.loads((tmp_path / "hessian.json").read_text())
    assert result["n"] == 2 * 4 + 4 + 4 * 2 + 2
    assert abs(result["lanczos"][0] - result["lam_max"]) < 1e-6
    assert len(result["eigenvalues"]) == result["n"]
    assert (tmp_path / "spectrum.png").exists() and (tmp_path / "eos.png").exists()


def test_lr_find(tmp_path, capsys):
    code, out, _ = run(capsys, "lr-find", "--samples", "100", "--num-iter", "100",
                       "--schedules", "--out", str(tmp_path), "--no-progress")
    assert code == 0 and "suggested lr" in out
    result = json.loads((tmp_path / "lr_finder.json").read_text())
    assert result["message"] is None and result["stop_reason"]
    assert result["suggestion"] > 0 and len(result["lrs"]) <= 100
    assert (tmp_path / "lr_finder.png").exists() and (tmp_path / "schedules.png").exists()


def test_sweep_resumes(tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    argv = ["sweep", "--serial", "--trials", "2", "--seeds", "2", "--epochs", "1",
            "--samples", "60", "--results", str(results), "--no-progress"]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "best configuration" in out
    assert len(results.read_text().splitlines()) == 4
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "4 already in the results file" in out
    assert len(results.read_text().splitlines()) == 4
    assert (tmp_path / "scores.png").exists()


def test_gradcheck(tmp_path, capsys):
    code, out, _ = run(capsys, "gradcheck", "--mlp", "2-3-1", "--second-order", "--out",
                       str(tmp_path))
    assert code == 0
    assert "gradcheck: PASS" in out and "gradgradcheck: PASS" in out
    table = [line for line in out.splitlines() if line.startswith("1e-")]
    assert len(table) == 12
    assert (tmp_path / "eps_sweep.png").exists()
    code, out, _ = run(capsys, "gradcheck", "--expr", "(a*b).sum() + a.tanh().sum()",
                       "--var", "a=0.5,-1", "--var", "b=2,3", "--no-sweep")
    assert code == 0 and "PASS" in out


BAD = [
    (["race", "--optimizers", "adamm"], "unknown optimizer 'adamm'"),
    (["race", "--optimizers", "sgd:lr=-1"], "Invalid learning rate"),
    (["race", "--landscape", "rastrigin", "--optimizers", "lm"], "least-squares"),
    (["race", "--landscape", "nowhere"], "unknown landscape"),
    (["race", "--start", "1"], "--start expects two numbers"),
    (["train", "--optimizer", "adamm"], "unknown optimizer"),
    (["train", "--lr", "-0.1"], "--lr must be positive"),
    (["train", "--data", "/nonexistent/points.csv"], "no such data set or file"),
    (["hessian", "--data", "/nonexistent.npz"], "no such data set or file"),
    (["lr-find", "--start-lr", "-1"], "--start-lr must be positive"),
    (["lr-find", "--optimizer", "sgd:lr=-3"], "Invalid learning rate"),
    (["lr-find", "--activation", "swish"], "--activation: MLP: unknown activation 'swish'"),
    (["hessian", "--optimizer", "lbfgs"], "pick a first-order optimizer"),
    (["sweep", "--lr=-1:1"], "need 0 < LO < HI"),
    (["sweep", "--optimizers", "lbfgs"], "cannot train with mini-batches"),
    (["gradcheck", "--expr", "a.foo()", "--var", "a=1"], "unknown method 'foo'"),
    (["gradcheck", "--eps", "-1"], "--eps must be positive"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, *argv, *(["--out", str(tmp_path)]
                                        if argv[0] in ("race", "train", "hessian", "lr-find")
                                        else []))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert lines[0].startswith(f"tinygrad-opt {argv[0]}: error:")


def test_the_progress_bar_ticks_once_per_unit_and_closes(tmp_path, capsys, monkeypatch):
    """On a terminal a command draws a bar (commands._study.progress): one tick per
    optimizer raced, its label beside the bar, closed at the end."""

    class Bar:
        def __init__(self, total):
            self.total, self.n, self.labels, self.closed = total, 0, [], False

        def set_description(self, text):
            self.description = text

        def set_postfix_str(self, text):
            self.labels.append(text)

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    bars = []
    monkeypatch.setattr("tinygrad_opt.commands._study.progress_bar",
                        lambda enabled, total: bars.append(Bar(total)) or bars[-1])
    code, _, _ = run(capsys, "race", "--landscape", "booth", "--optimizers", "sgd,newton",
                     "--steps", "3", "--no-plots", "--out", str(tmp_path))
    assert code == 0 and len(bars) == 1
    bar = bars[0]
    assert (bar.description, bar.total, bar.n, bar.closed) == ("racing", 2, 2, True)
    assert bar.labels == ["sgd", "newton"]


def test_unreadable_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    code, _, err = run(capsys, "train", "--data", str(bad), "--out", str(tmp_path))
    assert code == 2 and "cannot read it" in err and len(err.strip().splitlines()) == 1


@pytest.mark.browser
def test_report_renders_in_headless_chromium(demo, tmp_path):
    _, folder, _ = demo
    browser = next(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                   if shutil.which(b))
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox",
                    f"--screenshot={shot}", "--window-size=1200,2400",
                    f"file://{os.path.abspath(folder / 'report.html')}"],
                   check=True, timeout=60, capture_output=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000


def _closed_loopback_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("address", ["notanaddress", "closed"])
def test_a_bad_or_silent_scheduler_is_one_line_exit_2_and_leaves_nothing(
        address, tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.chdir(tmp_path)
    if address == "closed":
        address = f"tcp://127.0.0.1:{_closed_loopback_port()}"
    code, _, err = run(capsys, "sweep", "--scheduler", address, "--connect-timeout", "0.5",
                       "--no-progress")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert ("not a Dask scheduler address" in lines[0] if "://" not in address
            else "cannot reach the Dask scheduler" in lines[0])
    assert list(tmp_path.iterdir()) == []  # no runs/sweep, no empty results file


def test_a_second_sweep_of_another_space_is_refused_and_folds_are_reported(tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    argv = ["sweep", "--serial", "--trials", "1", "--epochs", "1", "--samples", "60",
            "--cv", "2", "--results", str(results), "--no-progress"]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    (record,) = [json.loads(line) for line in results.read_text().splitlines()]
    folds = record["fold_scores"]
    assert len(folds) == 2
    assert "its 2 fold scores (2 folds × 1 seed): " + ", ".join(f"{f:.4f}" for f in folds) in out
    assert "mean ± std over folds" in out
    before = results.read_text()
    code, _, err = run(capsys, *argv, "--optimizers", "adam")
    assert code == 2 and "another sweep" in err and "--fresh" in err
    assert len(err.strip().splitlines()) == 1 and results.read_text() == before
    code, _, _ = run(capsys, *argv, "--optimizers", "adam", "--fresh")
    assert code == 0 and before not in results.read_text()


def test_every_subcommand_writes_under_runs_by_default():
    from tinygrad_opt.cli import build_parser
    from tinygrad_opt.commands import COMMANDS as ALL

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    writers = ("demo", "train", "race", "graph", "hessian", "lr-find", "sweep", "gradcheck",
               "compare")
    assert set(writers) <= set(ALL)
    for name in ALL:
        actions = {a.dest: a for a in sub.choices[name]._actions}
        if name == "sweep":
            assert actions["results"].default.startswith("runs/sweep/")
        elif name == "graph":
            assert "runs/graph/" in actions["out"].help
        elif "out" in actions and actions["out"].default is not None:
            assert actions["out"].default == f"runs/{name}", name
        else:
            assert name not in writers, name


def test_compare_help_documents_every_option_with_its_default(capsys):
    code, _, _ = run(capsys, "compare", "--help")
    assert code == 0
    from tinygrad_opt.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for action in sub.choices["compare"]._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.dest
            if action.default not in (None, False):
                assert "default" in action.help, action.dest
