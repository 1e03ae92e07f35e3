"""How good are the eras: the seed's method and the era method side by side on
generated archives with a known answer (plugin/truth.py).

    python bench/quality.py [--seeds 100-109]

Seeds 1-3, 10-11 and 20-27 were looked at while tuning; the default seeds were not.
"""

from __future__ import annotations

import argparse

import numpy as np

from era_split.plugin import pipeline, truth
from era_split.plugin.params import SplitParams

VARIANTS = {
    "default (1,500 target faces)": {},
    "small identity (500 faces)": {"target_faces": 500},
    "large identity (3,000 faces)": {"target_faces": 3000},
    "closer lookalikes (sibling gap 0.30)": {"sibling_gap": 0.30},
}


def seeds_arg(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="100-109", type=seeds_arg)
    args = ap.parse_args()
    print("targets: precision >= 0.99, recall >= 0.90, purity >= 0.95, span <= 4 years")
    print(f"seeds {args.seeds[0]}-{args.seeds[-1]}; figures: mean (worst) over seeds\n")
    header = f"{'archive':<38} {'method':<6} {'precision':>15} {'recall':>15} {'purity':>15} {'span':>9} {'eras':>6} {'met':>6}"
    print(header)
    print("-" * len(header))
    for name, over in VARIANTS.items():
        rows = {"seed": [], "era": []}
        for s in args.seeds:
            archive = truth.generate(truth.TruthSpec(seed=s, **over))
            for how in rows:
                result = pipeline.analyse(archive.cache, archive.seed_keys, SplitParams(method=how),
                                          faceset="fs", read_photos=archive.read_photos)
                rows[how].append(truth.score(result, archive))
        for how, scores in rows.items():
            p = np.array([s.precision for s in scores])
            r = np.array([s.recall for s in scores])
            u = np.array([s.purity for s in scores])
            span = np.array([s.span for s in scores])
            e = np.array([s.eras for s in scores])
            met = sum(s.meets() for s in scores)
            print(f"{name:<38} {how:<6} {p.mean():7.3f} ({p.min():.3f}) {r.mean():7.3f} ({r.min():.3f}) "
                  f"{u.mean():7.3f} ({u.min():.3f}) {span.mean():4.1f} ({span.max()}) {e.mean():6.1f} "
                  f"{met:>3}/{len(scores)}")


if __name__ == "__main__":
    main()
