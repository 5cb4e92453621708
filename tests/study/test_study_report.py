"""The HTML report: well-formed, escaped, pictures embedded as decodable data URIs."""

import base64

import numpy as np
import pytest
from study_report_check import check_html, decode_image

from tinygrad_opt.study import plots
from tinygrad_opt.study.report import Report


def test_report_embeds_pictures_and_escapes_text(tmp_path):
    png = tmp_path / "a.png"
    fig = plots._figure(2, 2)
    fig.add_subplot().plot([0, 1], [1, 0])
    plots._save(fig, png)
    svg = tmp_path / "b.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>')
    report = Report("A <title> & more", "intro <b>not bold</b>")
    s = report.section("Numbers & <things>", "first paragraph")
    s.table(["name", "value"], [["<x>", 1.5], ["y", None]])
    s.image(png, "a line")
    s.image(svg)
    s.pre("a < b")
    report.section("Second").note("small")
    path = report.write(tmp_path / "r.html")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    checker, problems = check_html(text)
    assert problems == []
    assert [decode_image(src)[0] for src in checker.images] == ["image/png", "image/svg+xml"]
    assert decode_image(checker.images[0])[1] == png.read_bytes()
    assert "&lt;x&gt;" in text and "<x>" not in text and "&lt;b&gt;not bold" in text
    assert "<td>1.5</td>" in text and "<td>—</td>" in text


def test_images_must_exist_and_be_pictures(tmp_path):
    s = Report("r").section("s")
    with pytest.raises(FileNotFoundError):
        s.image(tmp_path / "missing.png")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="PNG, GIF, JPEG or SVG"):
        s.image(tmp_path / "x.txt")


def test_checker_catches_bad_nesting():
    _, problems = check_html("<!DOCTYPE html><html><body><p><b>x</p></b></body></html>")
    assert problems
    _, problems = check_html("<!DOCTYPE html><html><body><div></body></html>")
    assert problems


def test_race_pictures_are_written(tmp_path):
    from tinygrad_opt.study import race

    result = race.race("booth", ["sgd", "newton", "bfgs"], steps=8)
    for name, draw in (("c.png", plots.race_contour), ("k.png", plots.race_curves)):
        path = draw(result, tmp_path / name)
        with open(path, "rb") as handle:
            data = base64.b64encode(handle.read()).decode()
        assert decode_image("data:image/png;base64," + data)[0] == "image/png"
    gif = plots.race_gif(result, tmp_path / "r.gif", frames=4)
    with open(gif, "rb") as handle:
        assert handle.read(4) == b"GIF8"
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames >= 2
    assert np.isfinite(result["newton"].gap[-1])
