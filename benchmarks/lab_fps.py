"""gankit lab's frame rate and training speed: frames per second and G steps per second, one run and two side by
side, at several G steps per frame, with the page's default sizes (MLP 128 x 3, batch 256, 2-D latents, Ring8).

    python benchmarks/lab_fps.py                  # the server's side: HTTP round trips of /api/step, as the page makes
    python benchmarks/lab_fps.py --browser        # also the page itself in headless Chromium (its own frames/s counter)

Prints a Markdown table. A frame is: the G steps, D's surface on 48 x 48 points, 64 gradient arrows, G of 600 fixed
latents and of a 17 x 17 latent grid, the curves, ~50 kB of JSON; the browser's drawing is only in --browser.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import urllib.request
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gankit.lab.server import serve  # noqa: E402
from gankit.lab.session import Lab  # noqa: E402


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as reply:
        return json.loads(reply.read())


def http_rate(url: str, setup: dict, slots: list[str], per_frame: int, seconds: float) -> tuple[float, float]:
    for slot in slots:
        post(url + "/api/start", {"slot": slot, "setup": setup})
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for slot in slots:
            post(url + "/api/step", {"slot": slot, "what": "train", "n": per_frame})
        frames += 1
    wall = time.perf_counter() - start
    return frames / wall, frames * per_frame / wall


def train_only_rate(lab: Lab, setup: dict, steps: int) -> float:
    lab.start("a", setup)
    run = lab.run("a")
    run.train(5)
    start = time.perf_counter()
    run.train(steps)
    return steps / (time.perf_counter() - start)


def browser_rate(url: str, per_frame: int, two: bool, seconds: float) -> float:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                              args=["--headless", "--no-sandbox", "--disable-gpu"])
        pg = b.new_page(viewport={"width": 1400, "height": 1000})
        pg.goto(url)
        pg.locator("body[data-ready='1']").wait_for(state="attached")
        pg.fill("#steps", "1000000")
        pg.fill("#speed", str(per_frame))
        pg.click("#a-start")
        pg.locator("#a-status").filter(has_text="step 0").wait_for()
        if two:
            pg.check("#compare")
            pg.click("#b-start")
            pg.locator("#b-status").filter(has_text="step 0").wait_for()
        pg.click("#play")
        time.sleep(seconds)
        text = pg.inner_text("#fps")
        pg.click("#play")
        b.close()
    return float(text.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-frame", default="1,5,20", help="G steps per frame (comma-separated)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--browser", action="store_true", help="also measure the page in headless Chromium")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lab = Lab()
    server = serve(lab, port=0)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    setup = {**lab.initial, "steps": 1_000_000}
    try:
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads; MLP {setup['width']} x {setup['depth']}, "
              f"batch {setup['batch_size']}, n_critic {setup['n_critic']}\n")
        print(f"training alone (no frames): {train_only_rate(lab, setup, 200):.0f} G steps/s\n")
        cols = "| runs | G steps per frame | frames/s (server) | G steps/s per run |"
        cols += " frames/s (page in Chromium) |" if args.browser else ""
        print(cols)
        print("|---|---|---|---|" + ("---|" if args.browser else ""))
        for slots in (["a"], ["a", "b"]):
            for n in (int(v) for v in args.per_frame.split(",")):
                fps, sps = http_rate(url, setup, slots, n, args.seconds)
                row = f"| {len(slots)} | {n} | {fps:.1f} | {sps:.0f} |"
                if args.browser:
                    row += f" {browser_rate(url, n, len(slots) == 2, args.seconds):.1f} |"
                print(row, flush=True)
    finally:
        server.shutdown()
        server.server_close()
        lab.close()


if __name__ == "__main__":
    main()
