#!/usr/bin/env python3
"""Issue 7's figures from bench_fmnist_gpu.sh's runs, comparing runs at the same pace only.

The H200 test machine runs the same binary at one of two paces (~93k or ~160k images/s
for the Fashion-MNIST net), switching between one process and the next, references
included. A run judged against the reference just before it, or the medians of runs at
both paces, then say more about the machine than about stoker. This splits every
figure (trainers' and references' images/s) into paces at the widest gap between
neighbours when the fastest is more than 1.25x the slowest (else one pace), and per pace:
  - the evaluator's cost: mean trainer images/s of the runs with it against without;
  - an epoch from JPEGs against an epoch on data already on the GPU: each run's mean epoch
    seconds against the epoch the mean same-pace reference takes.
Input lines (RUNS file): NAME with|without TRAINER_IMAGES_PER_S REF_IMAGES_PER_S EPOCH_S
WALL_EPOCH_S IMAGES_PER_EPOCH. Prints a markdown table.
usage: fmnist_pace_summary.py RUNS
"""
import math
import sys


def paces(values):
    """Boundary between the paces (None: one pace), from all the images/s figures."""
    v = sorted(x for x in values if x > 0)
    if len(v) < 2 or v[-1] / v[0] <= 1.25:
        return None
    gaps = [(math.log(b) - math.log(a), (a * b) ** 0.5) for a, b in zip(v, v[1:])]
    return max(gaps)[1]


def mean(xs):
    return sum(xs) / len(xs) if xs else None


def main(path):
    runs = []
    for line in open(path):
        f = line.split()
        if len(f) == 7:
            runs.append((f[0], f[1], *map(float, f[2:])))
    cut = paces([r[2] for r in runs] + [r[3] for r in runs])
    pace = (lambda x: "one pace") if cut is None else (lambda x: "fast" if x > cut else "slow")
    print("| pace | runs with / without the evaluator | trainer images/s, with / without (means) "
          "| evaluator cost (target >= -3%) | references (mean images/s) | epoch / reference epoch, "
          "with the boundary (target <= 1.05) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for p in ("fast", "slow", "one pace"):
        mine = [r for r in runs if pace(r[2]) == p]
        refs = [x for x in [r[3] for r in runs] if x > 0 and pace(x) == p]
        if not mine:
            continue
        w = [r[2] for r in mine if r[1] == "with"]
        wo = [r[2] for r in mine if r[1] == "without"]
        cost = f"{100 * (mean(w) / mean(wo) - 1):+.1f}%" if w and wo else "-"
        ref = mean(refs)
        if ref:
            ep = [r[4] * ref / r[6] for r in mine]
            wall = [r[5] * ref / r[6] for r in mine]
            ratios = f"{min(ep):.2f}-{max(ep):.2f}, {min(wall):.2f}-{max(wall):.2f}"
        else:
            ratios = "- (no reference at this pace)"
        m = lambda xs: f"{mean(xs):,.0f}" if xs else "-"
        print(f"| {p} | {len(w)} / {len(wo)} | {m(w)} / {m(wo)} | {cost} | "
              f"{len(refs)} ({m(refs)}) | {ratios} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(sys.argv[1])
