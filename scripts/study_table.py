"""The markdown tables of docs/study.md from a study's results.json (docs/studies/NAME/results.json).

    python scripts/study_table.py docs/studies/ring8/results.json [--steps 200,400,600,800,1000]
    python scripts/study_table.py docs/studies/mnist_mlp/results.json [--runs runs/studies/mnist_mlp]

Prints three tables: the final metrics (mean +- s.e. over seeds), the modes covered at the reference README's
step figures (mean over seeds, with the per-seed range), so the two can be read side by side, and the mean
high-quality fraction at every snapshot the study kept (how sharp the covered modes become). For an image study
with the ``classes`` metric: one table of the class histogram's KL to uniform at every snapshot and at the end,
with each seed's most frequent class and its share (``--runs``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def mean_range(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    span = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
    return f"{statistics.fmean(values):.1f} ({span})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--steps", default="200,400,600,800,1000", help="snapshot steps for the modes table")
    parser.add_argument("--runs", type=Path, help="an image study's run folder (runs/studies/NAME): adds each seed's "
                                                  "most frequent class and its share, from the seeds' eval.json")
    args = parser.parse_args()
    try:
        results = json.loads(args.results.read_text())
    except (OSError, ValueError) as exc:
        sys.exit(f"study_table: cannot read {args.results}: {exc}")
    if any("classes/kl_to_uniform" in r["final"] for r in results.values()):
        class_tables(results, args.runs)
        return
    steps = [s for s in args.steps.split(",") if s]
    print("| config | seeds | G steps | modes | high-quality fraction | reverse KL | wall s |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        f = r["final"]
        cells = [f"{f[k]['mean']:.3f} ± {f[k]['se']:.3f}" for k in ("modes", "high_quality", "reverse_kl")]
        print(f"| `{name}` | {len(r['seeds'])} | {r['steps']} | " + " | ".join(cells) + f" | {r['seconds']:.0f} |")
    print()
    print("| config | " + " | ".join(f"modes at {s}" for s in steps) + " | modes at the end |")
    print("|---|" + "---|" * (len(steps) + 1))
    for name, r in results.items():
        curves = r.get("curves", {})
        cells = [mean_range(curves[s]["modes"]) if s in curves else "-" for s in steps]
        cells.append(mean_range(r["final"]["modes"]["values"]))
        print(f"| `{name}` | " + " | ".join(cells) + " |")
    print()
    snaps = sorted({int(s) for r in results.values() for s in r.get("curves", {})})
    end = any(str(r["steps"]) not in r.get("curves", {}) for r in results.values())  # a column for the final one
    print("| config | " + " | ".join(f"{s:,}" for s in snaps) + (" | end |" if end else " |"))
    print("|---|" + "---|" * (len(snaps) + end))
    for name, r in results.items():
        curves = r.get("curves", {})
        cells = [f"{statistics.fmean(curves[str(s)]['high_quality']):.2f}" if str(s) in curves else "-" for s in snaps]
        if end:
            cells.append(f"{r['final']['high_quality']['mean']:.2f}")
        print(f"| `{name}` | " + " | ".join(cells) + " |")


def top_classes(runs: Path | None, name: str) -> str:
    """'c (share, share, ...)' per seed from runs/NAME/seed_*/eval.json, or '-' without them."""
    if runs is None:
        return "-"
    cells = []
    for path in sorted((runs / name).glob("seed_*/eval.json")):
        histogram = json.loads(path.read_text())["classes"]["value"]["histogram"]
        top = max(range(len(histogram)), key=histogram.__getitem__)
        cells.append((top, histogram[top] / max(1, sum(histogram))))
    if not cells:
        return "-"
    classes = sorted({c for c, _ in cells})
    return f"{'/'.join(map(str, classes))} ({', '.join(f'{share:.3f}' for _, share in cells)})"


def class_tables(results: dict, runs: Path | None) -> None:
    """Image studies with the ``classes`` metric: the KL of the class histogram to uniform at every snapshot
    (mean over seeds) and at the end (mean +- s.e.), and each seed's most frequent class with its share."""
    ends = {r["steps"] for r in results.values()}
    snaps = sorted({int(s) for r in results.values() for s in r.get("curves", {})} - (ends if len(ends) == 1 else set()))
    print("| config | seeds | G steps | " + " | ".join(f"KL at {s:,}" for s in snaps if s)
          + " | KL at the end | top class (share per seed) | wall s |")
    print("|---|---|---|" + "---|" * (len([s for s in snaps if s]) + 3))
    for name, r in results.items():
        curves, final = r.get("curves", {}), r["final"]["classes/kl_to_uniform"]
        cells = [f"{statistics.fmean(curves[str(s)]['classes/kl_to_uniform']):.2f}" if str(s) in curves else "-"
                 for s in snaps if s]
        print(f"| `{name}` | {len(r['seeds'])} | {r['steps']} | " + " | ".join(cells)
              + f" | {final['mean']:.3f} ± {final['se']:.3f} | {top_classes(runs, name)} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
