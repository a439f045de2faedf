"""The screenshots of docs/lab.md, taken from the real page in headless Chromium (needs playwright + chromium).

    python scripts/lab_screenshots.py [--out docs]

1. lab_compare.png: Ring8, run A = NS GAN, run B = NS GAN + R1 (gamma 1), 600 G steps each, seed 0.
2. lab_drawn.png: a drawn data set of 6 points, NS GAN + R1, 400 G steps.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gankit.lab.server import serve  # noqa: E402
from gankit.lab.session import Lab  # noqa: E402


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    expect.set_options(timeout=300_000)
    lab = Lab()
    server = serve(lab, port=0)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                  args=["--headless", "--no-sandbox", "--disable-gpu"])
            pg = b.new_page(viewport={"width": 1380, "height": 980})
            pg.goto(url)
            pg.locator("body[data-ready='1']").wait_for(state="attached")
            pg.fill("#steps", "600")
            pg.fill("#speed", "20")
            pg.click("#a-start")
            # Start is asynchronous: Play trains the runs that have started, so wait for each start to land.
            expect(pg.locator("#a-status")).to_contain_text("step 0")
            pg.check("#compare")
            pg.check("#b-reg-r1")
            pg.fill("#b-w-r1", "1")
            pg.click("#b-start")
            expect(pg.locator("#b-status")).to_contain_text("step 0")
            pg.click("#play")
            expect(pg.locator("#b-status")).to_contain_text("finished")
            pg.screenshot(path=str(args.out / "lab_compare.png"), full_page=False)

            pg.uncheck("#compare")
            pg.select_option("#dataset", "drawn")
            pg.click("#clear-drawing")
            for x, y in [(80, 200), (140, 90), (260, 90), (320, 200), (260, 310), (140, 310)]:
                pg.click("#a-plane", position={"x": x, "y": y})
            pg.check("#a-reg-r1")
            pg.fill("#steps", "400")
            pg.click("#a-start")
            expect(pg.locator("#a-status")).to_contain_text("step 0 / 400")
            pg.click("#play")
            expect(pg.locator("#a-status")).to_contain_text("finished")
            pg.screenshot(path=str(args.out / "lab_drawn.png"), clip={"x": 0, "y": 0, "width": 480, "height": 980})
            b.close()
    finally:
        server.shutdown()
        server.server_close()
        lab.close()
    print(f"wrote {args.out / 'lab_compare.png'} and {args.out / 'lab_drawn.png'}")


if __name__ == "__main__":
    main()
