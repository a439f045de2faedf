"""End to end: the Dirac-GAN Gradio page driven by Playwright in headless Chromium (no network needed)."""
import os
import socket
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

for _key, _value in {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                     "DO_NOT_TRACK": "1"}.items():
    os.environ.setdefault(_key, _value)

pytest.importorskip("gradio", reason="gradio is not installed (pip install 'gankit[ui]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)", allow_module_level=True)

from gankit.dirac import ui  # noqa: E402

TIMEOUT_MS = 30_000
# pandas deprecations inside Gradio's queue
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.*")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    app = ui.launch(host="127.0.0.1", port=port, block=False)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(server, browser):
    context = browser.new_context()
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    # Only the local app may be reached: fonts or anything else from the internet are refused at once.
    pg.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
    pg.goto(server, wait_until="domcontentloaded")
    pg.locator("#dirac-run").wait_for(state="visible")
    try:
        yield pg
    finally:
        context.close()


def choose(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    page.get_by_role("option", name=value, exact=True).click()


def set_number(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.fill(value)
    box.press("Tab")


def test_run_shows_trajectory_eigenvalues_and_verdict(page):
    status = page.locator("#dirac-status")
    assert "press" in status.inner_text().lower()
    choose(page, "dirac-loss", "ns")
    choose(page, "dirac-reg", "r1")
    # choosing r1 puts its default weight in the weight box
    sync_api.expect(page.locator("#dirac-weight input")).to_have_value("0.3")
    page.get_by_label("alternating").check()
    set_number(page, "dirac-steps", "300")
    page.locator("#dirac-run").click()
    sync_api.expect(status).to_contain_text("ns + r1", timeout=TIMEOUT_MS)
    text = status.inner_text()
    assert "alternating" in text and "converged" in text and "not converged" not in text
    assert "-0.150" in text  # eigenvalues -gamma/2 +- ... i
    sync_api.expect(page.locator("#dirac-figure img")).to_be_visible()

    # a second method changes the result
    choose(page, "dirac-reg", "none")
    page.locator("#dirac-run").click()
    sync_api.expect(status).to_contain_text("ns + none", timeout=TIMEOUT_MS)
    assert "not converged" in status.inner_text()


def test_errors_are_shown_in_the_page(page):
    set_number(page, "dirac-lr", "0")
    page.locator("#dirac-run").click()
    status = page.locator("#dirac-status")
    sync_api.expect(status).to_contain_text("Error", timeout=TIMEOUT_MS)
    assert "--lr" in status.inner_text()
