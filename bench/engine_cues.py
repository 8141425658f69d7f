"""How well a linear classifier tells the speech engine from a clip's features.

A measure of the engine cues left in the features a network sees: two
classifiers, a multinomial logistic regression (scikit-learn, standardised
inputs, C = 0.1) and a random forest (300 trees, balanced class weights), are
trained to predict the *engine* (not the word) of every synthesised clip of
one split (the noise windows left out), with stratified 5-fold
cross-validation, and their balanced accuracy is reported (chance = 1 /
engines) for:

- ``none``: today's int8 features, all 1,024 codes;
- ``band-mean``: the per-band normalised int8 features (docs/data.md);
- ``none, band means only``: the 32 per-band means over the frames of the
  ``none`` features, exactly what ``band-mean`` subtracts;
- ``band-mean, band spreads only``: the 32 per-band standard deviations of
  the ``band-mean`` features (what a per-band variance normalisation would
  remove in turn).

    python bench/engine_cues.py --data DATA [--split testing]
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _classifier(kind, seed):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    return RandomForestClassifier(300, class_weight="balanced", random_state=seed, n_jobs=1)


def engine_accuracy(X, engines, kind="logistic", seed=0):
    """Mean and spread over 5 folds of the balanced accuracy of a ``kind`` classifier
    (``logistic`` or ``forest``)."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold

    scores = []
    for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(X, engines):
        model = _classifier(kind, seed)
        model.fit(X[train], engines[train])
        scores.append(balanced_accuracy_score(engines[test], model.predict(X[test])))
    return float(np.mean(scores)), float(np.std(scores))


def main(argv=None):
    from cosparse.sw.data.dataset import load_features
    from cosparse.sw.data.synth import read_manifest

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--split", default="testing")
    args = parser.parse_args(argv)
    manifest = read_manifest(args.data)
    if not manifest:
        parser.error(f"{args.data} has no clips.tsv (a `cosparse data synth` data set has one)")
    sets = {}
    for normalisation in ("none", "band-mean"):
        X, _, names = load_features(args.data, args.split, progress=False,
                                    normalisation=normalisation)
        keep = np.array([name in manifest for name in names])  # not the noise windows
        sets[normalisation] = X[keep, 0].astype(np.float64)
        engines = np.array([manifest[n]["engine"] for n in names if n in manifest])
    features = {
        "none": sets["none"].reshape(len(engines), -1),
        "band-mean": sets["band-mean"].reshape(len(engines), -1),
        "none, band means only": sets["none"].mean(axis=2),
        "band-mean, band spreads only": sets["band-mean"].std(axis=2),
    }
    counts = {e: int((engines == e).sum()) for e in sorted(set(engines))}
    report = {"split": args.split, "clips": counts, "chance": 1 / len(counts),
              "balanced_accuracy": {}}
    for name, X in features.items():
        for kind in ("logistic", "forest"):
            mean, spread = engine_accuracy(X, engines, kind)
            report["balanced_accuracy"][f"{name} ({kind})"] = {"mean": mean,
                                                               "std_over_folds": spread}
            print(f"{name + ' (' + kind + ')':<40} {100 * mean:5.1f}% +- {100 * spread:.1f}",
                  flush=True)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
