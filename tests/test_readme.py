"""The README runs as written, and the lessons it states hold.

* every ```python block runs, in order, in one namespace, in a fresh folder;
* every ``tinygrad-opt ...`` command it shows (in a code block or inline) exits 0, each in a
  fresh folder. Three kinds are not run, and each is checked instead: a synopsis with
  ``[optional]`` parts, the ``lab`` server (``tests/lab`` runs it), and a command naming a
  remote host -- its host must be the placeholder ``scheduler-host``, never a real-looking
  address. Where the README also shows a command with ``--quick``, the quick form is run;
* the ill-conditioning race it shows makes its point: gradient descent with exact line search
  needs at least 10x the steps of Newton-CG and BFGS.
"""

import contextlib
import io
import json
import pathlib
import re
import shlex

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text(encoding="utf-8")
FENCED = re.compile(r"^```([\w-]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
PLACEHOLDER_HOST = "scheduler-host"
SERVERS = ("lab",)  # subcommands that serve until stopped


def python_blocks(text):
    return [body for lang, body in FENCED.findall(text) if lang == "python"]


def shown_commands(text):
    """Every ``tinygrad-opt ...`` line of a non-Python code block and every inline code span
    that starts with ``tinygrad-opt ``, comments cut, in reading order, without repeats."""
    found = []
    for lang, body in FENCED.findall(text):
        if lang != "python":
            found += [line for line in body.splitlines() if line.startswith("tinygrad-opt ")]
    prose = FENCED.sub("", text)
    found += [span for span in re.findall(r"`([^`]+)`", prose)
              if " ".join(span.split()).startswith("tinygrad-opt ")]
    commands = []
    for line in found:
        line = " ".join(re.split(r"\s#\s", line)[0].split())
        if line not in commands:
            commands.append(line)
    return commands


def _remote_host(command):
    match = re.search(r"\w+://([^:/\s]+)", command)
    return match.group(1) if match else None


def runnable(commands):
    """The commands to run: no synopsis, no server, no remote host, and the ``--quick`` form
    where the README shows one."""
    out = []
    for command in commands:
        words = shlex.split(command)
        if "[" in command or words[1] in SERVERS or _remote_host(command):
            continue
        if f"{command} --quick" in commands:
            continue
        out.append(command)
    return out


def run_cli(argv):
    from tinygrad_opt.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_the_python_blocks_run_in_order_in_a_fresh_folder(tmp_path, monkeypatch):
    blocks = python_blocks(TEXT)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"README.md python block {number}", "exec")
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, namespace)  # noqa: S102 - the README's own code, run as a reader would
    # the blocks' own promises
    b = namespace["b"].numpy()
    assert abs(b[0] - 2.0) < 1e-6 and abs(b[1] - 0.7) < 1e-6
    found = namespace["found"]
    assert found.message is None and 1e-5 < found.suggestion < 10  # a fresh model: an lr
    assert (tmp_path / "race.png").exists() and (tmp_path / "race.gif").exists()


def test_remote_hosts_are_placeholders_and_addresses_loopback():
    commands = shown_commands(TEXT)
    remote = [c for c in commands if _remote_host(c)]
    assert remote, "the README shows the Dask sweep"
    for command in remote:
        assert _remote_host(command) == PLACEHOLDER_HOST, command
    for address in re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", TEXT):
        assert address.startswith("127."), f"a real-looking address in the README: {address}"


COMMANDS = runnable(shown_commands(TEXT))


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_runs_and_exits_0(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(shlex.split(command)[1:])
    assert code == 0, f"{command}\n{out[-2000:]}\n{err[-2000:]}"
    words = shlex.split(command)
    if "race" in words[1:2] and "gd-exact" in command and "quadratic" in command:
        _check_the_zigzag_lesson(tmp_path / "runs" / "race" / "race.json")


def _check_the_zigzag_lesson(path):
    table = {row["optimizer"]: row for row in json.loads(path.read_text())["table"]}
    gd = table["gd-exact"]["steps_to_tol"]
    fast = [table[k]["steps_to_tol"] for k in ("newton-cg", "bfgs") if k in table]
    assert fast and all(fast), "Newton-CG and BFGS reach the tolerance"
    assert gd is None or gd >= 10 * max(fast), (gd, fast)


def test_the_commands_found_cover_every_subcommand_shown():
    shown = {shlex.split(c)[1] for c in shown_commands(TEXT)}
    assert {"race", "train", "hessian", "lr-find", "sweep", "gradcheck", "demo",
            "compare", "graph"} <= shown
    assert all(not c.startswith("tinygrad-opt demo ") or "--quick" in c
               for c in COMMANDS if "demo" in c)


def test_the_compare_table_and_its_prose_follow_the_recorded_run():
    from tinygrad_opt.commands.compare import format_table

    recorded = json.loads((README.parent / "docs" / "compare_digits.json").read_text())
    results = recorded["results"]
    table = format_table(results)
    assert table in TEXT  # the README shows the run's own table, cell for cell
    prose = TEXT[TEXT.index(table):]
    r = {m: v for m, v in results.items()}
    ratio = {m: v["time_vs_sgd"] for m, v in r.items()}
    assert 0.8 < ratio["sgd_nesterov"] < 1.25  # the paired measurement is sane
    assert f"costs {ratio['proxprop_exact']:.0f}x SGD's time" in prose
    assert f"at {ratio['proxprop_cg1']:.1f}x SGD's time" in prose
    assert f"at {ratio['kfac']:.1f}x" in prose and f"at {ratio['hessian_free']:.0f}x" in prose
    assert max(ratio, key=ratio.get) == "hessian_free" and "the slowest" in prose
    final = {m: v["history"][-1]["train_loss"] for m, v in r.items()}
    assert min(final, key=final.get) == "kfac" and "K-FAC reaches the lowest" in prose
    first = {m: v["history"][0]["train_loss"] for m, v in r.items()}
    assert min(first, key=first.get) == "proxprop_exact"
    assert f"({first['proxprop_exact']:.3f}\n" in prose or \
        f"({first['proxprop_exact']:.3f} " in prose.replace("\n", " ")
