"""The lab in a real browser: Playwright driving Debian's chromium (no browser download),
marked ``browser``; it skips cleanly where no chromium is installed. Screenshots go to
runs/lab/ (look at them)."""

import math
import os
import re
import shutil
import time

import pytest

pytestmark = pytest.mark.browser

SHOTS = os.path.join("runs", "lab")


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("needs a headless Chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser(lab_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=_chromium(), headless=True,
                                     args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, lab_server):
    """The lab's page, loaded; ``problems`` collects console errors."""
    os.makedirs(SHOTS, exist_ok=True)
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    tab.problems = []
    tab.on("console", lambda m: m.type == "error" and tab.problems.append(m.text))
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    tab.lab_app = lab_server[1]
    tab.goto(lab_server[0])
    tab.wait_for_selector("body[data-ready=true]", timeout=30_000)
    yield tab
    tab.close()


def _number(text):
    return float(text.strip())


def test_page_loads_without_console_errors(page):
    page.screenshot(path=os.path.join(SHOTS, "page.png"), full_page=True)
    assert page.problems == []
    assert page.locator("[data-testid=graph] svg").count() == 1


def test_stepping_backward_shows_the_engines_gradients(page):
    import tinygrad_opt as tg

    page.fill("[data-testid=expr]", "a*b + c.tanh()")
    page.fill("#vars", "a=2 b=-3 c=0.5")
    page.click("[data-testid=draw]")
    page.wait_for_function("document.querySelector('#bp-status').textContent.includes('press')")
    n_steps = page.locator("#bp-steps tr[data-step]").count()
    assert n_steps == 3
    for k in range(1, n_steps + 1):
        page.click("[data-testid=step]")
        assert page.locator(f"#bp-steps tr[data-step='{k}'].done").count() == 1
        current = page.locator("[data-testid=graph] g.node.current text").first.text_content()
        assert current.startswith(f"#{k} ")
    page.locator("[data-testid=graph]").screenshot(path=os.path.join(SHOTS, "backprop.png"))
    a, b, c = (tg.Tensor(v, dtype="float64", requires_grad=True) for v in (2.0, -3.0, 0.5))
    (a * b + c.tanh()).backward()
    for name, leaf in {"a": a, "b": b, "c": c}.items():
        shown = page.locator(f"#bp-leaves tr[data-leaf='{name}'] .grad").text_content()
        assert math.isclose(_number(shown), leaf.grad.item(), rel_tol=1e-5)
    assert page.problems == []


def test_a_race_draws_and_fills_its_table(page):
    page.select_option("#landscape", "booth")
    page.wait_for_selector("[data-testid=race-plot][data-landscape=booth]")
    page.click("[data-testid=race-run]")  # the same race again: the same table
    page.wait_for_function("document.querySelector('#race-status').textContent.includes('ms')")
    assert page.locator("[data-testid=race-table] tr").count() == 5
    rows = page.locator("[data-testid=race-table] tr").all_text_contents()
    assert [r.split("\n")[0] for r in rows[1:]] != []
    assert page.locator("[data-testid=race-plot] polyline.path").count() == 4
    points = page.locator("[data-testid=race-plot] polyline.path").first.get_attribute("points")
    assert len(points.split()) > 2
    assert re.search(r"newton.*converged", " ".join(rows))
    page.locator("#race").screenshot(path=os.path.join(SHOTS, "race.png"))
    # Clicking the picture starts the race there: every path begins at the click.
    plot = page.locator("[data-testid=race-plot] svg.contour")
    # bounding_box() does not wait, and the page may still replace the contour with
    # the landscape's redraw on a loaded machine: ask again until it is laid out (5 s at most)
    box = None
    for _ in range(50):
        plot.wait_for(state="visible")
        box = plot.bounding_box()
        if box:
            break
        page.wait_for_timeout(100)
    assert box, "the race's contour was never laid out"
    plot.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.75})
    page.wait_for_selector("[data-testid=race-plot]:not([data-start='0,0'])")  # booth: origin
    clicked = [float(c) for c in page.get_attribute("[data-testid=race-plot]", "data-start")
               .split(",")]
    assert clicked == pytest.approx([-5.0, -5.0], abs=0.1)  # a quarter into ±10
    start = page.locator("[data-testid=race-plot] circle.start")
    first = page.locator("[data-testid=race-plot] polyline.path").first.get_attribute("points")
    x, y = (float(v) for v in first.split()[0].split(","))
    assert abs(x - float(start.get_attribute("cx"))) < 1
    assert abs(y - float(start.get_attribute("cy"))) < 1
    assert abs(x / 520 - 0.25) < 0.01
    assert page.problems == []


def test_live_training_changes_the_shown_loss(page):
    page.click("[data-testid=train-run]")
    page.wait_for_function("document.querySelector('[data-testid=train-loss]').textContent != '—'")
    first = _number(page.locator("[data-testid=train-loss]").text_content())
    page.wait_for_function(f"Number(document.querySelector('[data-testid=train-loss]')"
                           f".textContent) < {first} - 0.05", timeout=20_000)
    page.click("[data-testid=train-run]")  # pause: the server stops training
    page.wait_for_timeout(500)  # the slice under way and its frame
    paused = page.locator("#train-step").text_content()
    page.wait_for_timeout(600)
    assert page.locator("#train-step").text_content() == paused
    page.locator("#training").screenshot(path=os.path.join(SHOTS, "training.png"))
    registry = page.lab_app.state.registry
    assert len(registry.sessions) == 1
    page.click("#train-reset")
    page.wait_for_function("document.querySelector('[data-testid=train-loss]').textContent == '—'")
    _wait_until(lambda: not registry.sessions)
    assert page.problems == []


def test_closing_the_tab_stops_its_training(browser, lab_server):
    url, app = lab_server
    tab = browser.new_page()
    tab.goto(url)
    tab.wait_for_selector("body[data-ready=true]", timeout=30_000)
    tab.click("[data-testid=train-run]")
    tab.wait_for_function("document.querySelector('[data-testid=train-loss]').textContent != '—'")
    assert len(app.state.registry.sessions) == 1
    tab.close()
    _wait_until(lambda: not app.state.registry.sessions)


def _wait_until(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the server did not stop the training"
        time.sleep(0.05)
