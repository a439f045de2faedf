"""End to end: the gankit lab page driven by Playwright in headless Chromium (no network needed)."""
from pathlib import Path

import pytest
import torch

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)", allow_module_level=True)

from gankit.experiment import load_run  # noqa: E402
from gankit.lab.server import serve  # noqa: E402
from gankit.lab.session import Lab  # noqa: E402
from gankit_testing import run_cli_here  # noqa: E402
from test_dirac_ui import CHROMIUM_ARGS  # noqa: E402


TIMEOUT_MS = 60_000
expect = sync_api.expect
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def served():
    lab = Lab()
    server = serve(lab, port=0)
    try:
        yield lab, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        lab.close()


@pytest.fixture
def page(served):
    _, url = served
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(TIMEOUT_MS)
        pg.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url) else route.abort())
        pg.goto(url, wait_until="domcontentloaded")
        pg.locator("body[data-ready='1']").wait_for(state="attached")
        try:
            yield pg
        finally:
            context.close()
            browser.close()


def plane(pg, slot: str) -> str:
    return pg.evaluate(f"document.getElementById('{slot}-plane').toDataURL()")


def test_train_step_compare_download_and_train_the_yaml(page, served, tmp_path):
    lab, _ = served
    pg = page
    pg.fill("#steps", "20")
    pg.fill("#speed", "4")
    pg.click("#a-start")
    expect(pg.locator("#a-status")).to_contain_text("step 0 / 20")
    before = plane(pg, "a")
    pg.click("#play")
    expect(pg.locator("#a-status")).to_contain_text("step 20 / 20 · 20 D steps · next: D 1/1 · finished")
    assert plane(pg, "a") != before  # the generated points moved
    expect(pg.locator("#play")).to_have_text("Play")
    assert "frames/s" in pg.inner_text("#fps")

    pg.click("#step-d")  # one D step
    expect(pg.locator("#a-status")).to_contain_text("21 D steps · next: G")

    pg.check("#a-reg-r1")  # switch a regularizer: run A starts again with it
    pg.fill("#a-w-r1", "0.5")
    pg.click("#a-start")
    expect(pg.locator("#message")).to_have_text("run A started: ns + r1")
    expect(pg.locator("#a-status")).to_contain_text("step 0 / 20")

    pg.check("#compare")  # the second run, side by side: WGAN-GP
    pg.select_option("#b-loss", "wgan")
    pg.check("#b-reg-gp")
    pg.click("#b-start")
    expect(pg.locator("#b-status")).to_contain_text("step 0 / 20")
    pg.click("#play")
    expect(pg.locator("#a-status")).to_contain_text("finished")
    expect(pg.locator("#b-status")).to_contain_text("finished")
    expect(pg.locator("#a-yaml")).to_contain_text("name: r1")
    expect(pg.locator("#b-metrics-text")).to_contain_text("modes")

    with pg.expect_download() as info:
        pg.click("#a-download")
    yaml_path = tmp_path / "lab_a.yaml"
    info.value.save_as(yaml_path)
    assert run_cli_here("train", str(yaml_path), "--out", str(tmp_path / "run")).returncode == 0
    cli = load_run(tmp_path / "run").exp
    for name in ("generator", "discriminator"):
        mine, theirs = lab.run("a").exp.networks[name].state_dict(), cli.networks[name].state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), name


def test_bad_values_are_one_message_on_the_page(page):
    pg = page
    message = pg.locator("#message")
    pg.fill("#a-lr_g", "-1")
    pg.click("#a-start")
    expect(message).to_contain_text("G learning rate must be > 0")
    expect(message).to_have_class("error")
    pg.fill("#a-lr_g", "0.001")
    pg.fill("#a-pack", "3")
    pg.click("#a-start")
    expect(message).to_contain_text("multiple of model.pack (3)")
    pg.fill("#a-pack", "1")
    pg.select_option("#dataset", "drawn")
    pg.click("#clear-drawing")
    pg.click("#a-start")
    expect(message).to_contain_text("the drawing is empty")
    pg.fill("#speed", "2")
    pg.click("#play")
    expect(message).to_contain_text("start a run first")
    for x, y in [(100, 100), (300, 120), (200, 300)]:  # draw three points and train on them
        pg.click("#a-plane", position={"x": x, "y": y})
    expect(pg.locator("#drawn-count")).to_have_text("3 points")
    pg.click("#a-start")
    expect(message).to_contain_text("run A started")
    pg.fill("#speed", "0")
    pg.click("#play")
    expect(message).to_contain_text("G steps per frame must be a whole number")
    pg.click("#step-g")
    expect(pg.locator("#a-status")).to_contain_text("stepped off the schedule")
    expect(pg.locator("#a-metrics-text")).to_contain_text("/3")
