"""`tinygrad-opt graph`: files written, DOT on stdout, exit codes, one-line errors."""

import re
import xml.etree.ElementTree as ET

import pytest

from tinygrad_opt import draw
from tinygrad_opt.cli import main

NEEDS_DOT = pytest.mark.skipif(not draw.dot_available(), reason="needs Graphviz's dot")
NODE = re.compile(r"^\t+(n\d+|legend) \[", re.MULTILINE)
EXPR = ["graph", "--expr", "a*b + c.tanh()", "--var", "a=2", "--var", "b=-3", "--var", "c=1"]


def one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@NEEDS_DOT
def test_expression_to_svg(tmp_path, capsys):
    out = tmp_path / "g.svg"
    assert main(EXPR + ["--out", str(out)]) == 0
    root = ET.parse(out).getroot()
    groups = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node"]
    # a, b, c, a*b, tanh(c), the sum; Mul, Tanh, Add
    assert len(groups) == 9
    assert "wrote" in capsys.readouterr().out


def test_expression_to_dot_carries_values_and_gradients(tmp_path):
    out = tmp_path / "g.dot"
    assert main(EXPR + ["--out", str(out)]) == 0
    source = out.read_text()
    assert 'label="a | data 2.0000 | grad -3.0000"' in source
    assert 'label="b | data -3.0000 | grad 2.0000"' in source
    assert 'label="c | data 1.0000 | grad 0.4200"' in source  # 1 - tanh(1)²
    assert len(NODE.findall(source)) == 9


def test_dot_text_goes_to_stdout_with_out_dash(capsys):
    assert main(EXPR + ["--mode", "both", "--out", "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digraph {") and "#1 AddBackward" in out


@NEEDS_DOT
def test_the_default_picture_goes_to_runs_graph_and_fits_a_screen(tmp_path, monkeypatch,
                                                                   capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "--mlp", "2-4-1", "--order", "2"]) == 0
    line = one_line(capsys.readouterr().out)
    path = tmp_path / "runs" / "graph" / "mlp-2-4-1-order2.svg"
    assert line.startswith(f"wrote {path.relative_to(tmp_path)}: ") and path.exists()
    svg = path.read_text()
    width, height = (float(v) * 96 / 72 for v in re.search(
        r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups())
    assert width <= 1800 and height <= 2200 and 'transform="scale(1 1)' in svg
    folded = len(re.findall('class="node"', svg))
    assert "--full draws them all" in line and f"folded to {folded} nodes" in line
    assert main(["graph", "--mlp", "2-4-1", "--order", "2", "--full",
                 "--out", str(tmp_path / "full.svg")]) == 0
    assert len(re.findall('class="node"', (tmp_path / "full.svg").read_text())) > folded
    assert "folded" not in capsys.readouterr().out


def test_statements_name_the_tensors(capsys):
    assert main(["graph", "--expr", "e = a*b; d = e + c; L = d * f", "--var", "a=2",
                 "--var", "b=-3", "--var", "c=10", "--var", "f=-2", "--out", "-"]) == 0
    out = capsys.readouterr().out
    for label in ('label="L | data -8.0000 | grad 1.0000"', 'label="d | data 4.0000 | grad -2.0000"',
                  'label="e | data -6.0000 | grad -2.0000"', 'label="a | data 2.0000 | grad 6.0000"'):
        assert label in out


def test_mlp_second_order(tmp_path):
    out = tmp_path / "mlp.dot"
    assert main(["graph", "--mlp", "2-4-1", "--order", "2", "--full", "--out", str(out)]) == 0
    source = out.read_text()
    assert "subgraph cluster_forward_order1" in source
    assert "layers.0.weight" in source and "(4, 2) | float64" in source


def test_mlp_max_nodes(tmp_path):
    out = tmp_path / "mlp.dot"
    assert main(["graph", "--mlp", "2-8-8-8-1", "--batch", "4", "--max-nodes", "12",
                 "--out", str(out)]) == 0
    assert len(NODE.findall(out.read_text())) <= 12


@pytest.mark.parametrize("argv, text", [
    (["graph"], "one of the arguments --expr --mlp is required"),
    (["graph", "--expr", "a + d", "--var", "a=1"], "unknown name 'd'"),
    (["graph", "--expr", "__import__('os').system('true')"], "unknown"),
    (["graph", "--expr", "__import__('os')"], "unknown function '__import__'"),
    (["graph", "--expr", "a.data", "--var", "a=1"], "attribute access"),
    (["graph", "--expr", "[a for a in b]", "--var", "b=1"], "not allowed"),
    (["graph", "--expr", "a +", "--var", "a=1"], "cannot parse"),
    (["graph", "--expr", "a", "--var", "a=x"], "must be a number"),
    (["graph", "--expr", "2**10**10 + a", "--var", "a=1"], "too large"),
    (["graph", "--expr", "a*2", "--var", "a=1", "--order", "9"], "--order"),
    (["graph", "--mlp", "2-x-1"], "--mlp expects"),
    (["graph", "--mlp", "2-1", "--var", "a=1"], "--var applies to --expr"),
    (["graph", "--expr", "a", "--var", "a=1", "--out", "g.txt"], "--out g.txt"),
    (["graph", "--expr", "a", "--var", "a=1", "--fit", "wide"], "--fit expects"),
    (["graph", "--expr", "a", "--var", "a=1", "--mode", "up"], "invalid choice"),
    (["graph", "--expr", "a", "--var", "a=1", "--bogus"], "unrecognized arguments"),
    ([], "choose a command"),
    (["nope"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_one_line(argv, text, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith("tinygrad-opt") and text in line
    assert captured.out == ""


def test_missing_dot_exits_1_with_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(EXPR + ["--out", str(tmp_path / "g.svg")]) == 1
    line = one_line(capsys.readouterr().err)
    assert "apt-get install graphviz" in line and "g.dot" in line
    assert not (tmp_path / "g.svg").exists()


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "graph" in capsys.readouterr().out
    assert main(["graph", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--expr", "--fit WxH", "--full", "runs/graph/NAME.svg", "3-D boxes"):
        assert flag in text
