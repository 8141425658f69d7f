"""The ``export``, ``golden`` and ``evaluate`` subcommands of ``cosparse``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import cosparse

from . import assets, golden, inputs, netspec
from .data.gsc import CLASSES

__all__ = ["register_export", "register_golden", "register_evaluate", "golden_report",
           "evaluate", "breakdown"]


# ---- export -----------------------------------------------------------------

def register_export(subparsers):
    parser = subparsers.add_parser(
        "export", help="quantise and pack a trained checkpoint into a NetSpec",
        description="Fold batch norm, quantise to int8, pack complementary groups and write "
                    "a NetSpec folder (docs/netspec.md). Activation scales are calibrated on "
                    "training clips, except for a quantisation-aware fine-tuned checkpoint "
                    "(`cosparse train --qat-from`), whose frozen scales are used as trained.")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint from `cosparse train`")
    parser.add_argument("--data", required=True, help="GSC-layout data set for calibration "
                        "(unused for a quantisation-aware fine-tuned checkpoint)")
    parser.add_argument("--out", required=True, help="NetSpec folder to write")
    parser.add_argument("--calibration", type=inputs.positive(int), default=2000,
                        help="training clips used to calibrate activation scales (default 2000)")
    parser.add_argument("--name", default="gsc-sparse", help="network name in the NetSpec")
    parser.add_argument("--weight-bits", metavar="LAYER=BITS,...",
                        help="weight bits per layer, 2..16, others 8 (default conv1=16; "
                             "'none': all 8)")
    parser.add_argument("--frac-bits", metavar="LAYER=BITS,...",
                        help="fraction bits a layer hands its k-WTA, 0..8, others 0 (default "
                             "conv1=4,conv2=4; 'none': k-WTAs rank int8 values)")
    parser.set_defaults(func=_run_export)


def _run_export(args):
    from .export import Precision
    from .train import load_checkpoint, read_checkpoint
    model = load_checkpoint(args.checkpoint)
    ckpt = read_checkpoint(args.checkpoint)
    qat = ckpt.get("qat")
    if qat is not None and args.weight_bits is None and args.frac_bits is None:
        # The precision it was fine-tuned at (int8 for checkpoints that do not record one).
        precision = Precision(**qat.get("precision", Precision.int8().as_dict()))
    else:
        precision = Precision.parse(args.weight_bits, args.frac_bits)
    metadata = {"checkpoint": str(args.checkpoint),
                "checkpoint_metrics": ckpt.get("metrics", {}),
                "command": " ".join(["cosparse"] + sys.argv[1:]),
                # how the complementary masks were learned (checkpoints before --mask: static)
                "mask": ckpt.get("mask", {"method": "static"}),
                # the structure of the assignments (checkpoints before --pattern: random)
                "pattern": ckpt["config"].get("pattern", "random"),
                # the Sparse-IFT variant (docs/model.md); parallel's branches are folded here
                "ift": {"variant": ckpt["config"].get("ift", "none"),
                        "branches": ckpt["config"].get("branches", 1)}}
    if qat is not None:  # the scales it was fine-tuned with: the NetSpec computes that forward
        metadata["qat"] = qat
        calibration, scales = None, qat["output_scales"]
    else:
        calibration, scales = inputs.from_dataset(args.data, "train", args.calibration,
                                                  normalisation=model.config.features).x, None
    spec = cosparse.export(model, calibration, out=args.out, name=args.name, metadata=metadata,
                           output_scales=scales, precision=precision)
    print(f"wrote NetSpec {spec.name!r} to {args.out}: "
          + ", ".join(f"{l.name} ({l.kind})" for l in spec.layers))
    return 0


# ---- golden -----------------------------------------------------------------

def register_golden(subparsers):
    parser = subparsers.add_parser(
        "golden", help="run the bit-exact integer model of a NetSpec",
        description="Run the golden integer model. With no input option it runs the shipped "
                    "default model on the shipped sample clips.")
    inputs.add_netspec_argument(parser)
    inputs.add_input_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.set_defaults(func=_run_golden)


def _label_name(index: int) -> str | None:
    return CLASSES[index] if 0 <= index < len(CLASSES) else None


def golden_report(spec, data: inputs.Inputs, result: golden.GoldenResult) -> dict:
    """Per input: label, prediction, logits, per-layer work; and a summary."""
    classes = list(spec.classes)
    per_input = []
    for i, name in enumerate(data.names):
        label = int(data.labels[i])
        per_input.append({
            "name": name, "label": classes[label] if 0 <= label < len(classes) else None,
            "prediction": classes[int(result.predictions[i])],
            "logits": result.logits[i].tolist(),
            "layers": [stats.as_dict(i) for stats in result.stats]})
    labelled = data.labels >= 0
    summary = {"inputs": len(data), "labelled": int(labelled.sum()),
               "correct": int((result.predictions[labelled] == data.labels[labelled]).sum()),
               "layers": []}
    summary["accuracy"] = (summary["correct"] / summary["labelled"]) if summary["labelled"] else None
    for stats in result.stats:
        useful = float(stats.useful_macs.mean()) if len(data) else 0.0
        summary["layers"].append({
            "name": stats.name, "mean_useful_macs": useful, "packed_macs": stats.packed_macs,
            "dense_macs": stats.dense_macs,
            "dense_over_useful": stats.dense_macs / useful if useful else None})
    summary["mean_useful_macs"] = sum(l["mean_useful_macs"] for l in summary["layers"])
    summary["dense_macs"] = sum(l["dense_macs"] for l in summary["layers"])
    return {"netspec": spec.name, "inputs": per_input, "summary": summary}


def _print_golden(report):
    rows = report["inputs"]
    width = max([len(Path(r["name"]).name) for r in rows] + [5])
    layer_names = [l["name"] for l in report["summary"]["layers"]]
    print(f"{'input':<{width}}  {'label':<8} {'predicted':<9} ok  "
          + "  ".join(f"{n + ' MACs':>14}" for n in layer_names))
    for r in rows:
        ok = "" if r["label"] is None else ("yes" if r["label"] == r["prediction"] else "NO")
        print(f"{Path(r['name']).name:<{width}}  {r['label'] or '-':<8} {r['prediction']:<9} "
              f"{ok:<3} " + "  ".join(f"{l['useful_macs']:>14,}" for l in r["layers"]))
    s = report["summary"]
    print()
    print(f"{'layer':<8} {'useful MACs/input':>18} {'packed MACs':>12} {'dense MACs':>12} "
          f"{'dense/useful':>12}")
    for l in s["layers"]:
        ratio = f"{l['dense_over_useful']:.1f}x" if l["dense_over_useful"] else "-"
        print(f"{l['name']:<8} {l['mean_useful_macs']:>18,.0f} {l['packed_macs']:>12,} "
              f"{l['dense_macs']:>12,} {ratio:>12}")
    total_ratio = s["dense_macs"] / s["mean_useful_macs"] if s["mean_useful_macs"] else 0
    print(f"{'total':<8} {s['mean_useful_macs']:>18,.0f} {'':>12} {s['dense_macs']:>12,} "
          f"{total_ratio:>11.1f}x")
    if s["accuracy"] is not None:
        print(f"\naccuracy: {s['correct']}/{s['labelled']} = {100 * s['accuracy']:.1f}%")


def _run_golden(args):
    inputs.check_input_arguments(args)
    spec = inputs.load_netspec(args)
    data = inputs.resolve(args, spec)
    report = golden_report(spec, data, cosparse.golden(spec, data.x, activations=False))
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        _print_golden(report)
    return 0


# ---- evaluate ---------------------------------------------------------------

def evaluate(spec, checkpoint, data: inputs.Inputs, dense_checkpoint=None,
             output_scales=None, manifest=None) -> dict:
    """Accuracy of the int8 golden model, the float sparse model and (optionally) a dense one.

    ``float_sparse_accuracy`` and ``golden_agrees_with_float_sparse`` use
    the checkpoint's plain float forward pass (no rounding). With the
    exporter's ``output_scales`` (NetSpec metadata), it also runs the model
    with the same int8 roundings in PyTorch (cosparse.sw.export.fake_quant)
    and reports how often the golden model agrees with it: a clip-by-clip
    check of exporter and golden model against PyTorch.

    ``trained_forward`` says which of the two forward passes the checkpoint
    was trained with: ``"int8_rounded"`` for a quantisation-aware fine-tuned
    checkpoint (`cosparse train --qat-from`), else ``"float"``;
    ``golden_agrees_with_trained_forward`` repeats the agreement with that one.

    With a data set's ``manifest`` (:func:`cosparse.sw.data.synth.read_manifest`,
    non-empty), the report adds :func:`breakdown`: accuracy per SNR band and
    per speech engine.
    """
    import torch

    from .features import dequantise_features
    from .train import load_checkpoint, read_checkpoint

    def float_predictions(path):
        model = load_checkpoint(path)
        with torch.no_grad():
            logits = torch.cat([model(torch.from_numpy(dequantise_features(chunk)))
                                for chunk in np.array_split(data.x, max(1, len(data.x) // 512))])
        return logits.argmax(1).numpy()

    result = golden.run(spec, data.x, keep_activations=False)
    sparse = float_predictions(checkpoint)
    report = {"inputs": len(data),
              "golden_int8_accuracy": float((result.predictions == data.labels).mean()),
              "float_sparse_accuracy": float((sparse == data.labels).mean()),
              "golden_agrees_with_float_sparse": float((result.predictions == sparse).mean())}
    if output_scales is not None:
        from .export.fake_quant import predict
        from .export import Precision
        fake = predict(load_checkpoint(checkpoint), data.x, output_scales,
                       precision=Precision.of(spec))
        report["float_int8_rounded_accuracy"] = float((fake == data.labels).mean())
        report["golden_agrees_with_float_int8_rounded"] = float((result.predictions == fake).mean())
    qat = read_checkpoint(checkpoint).get("qat") is not None
    report["trained_forward"] = "int8_rounded" if qat else "float"
    trained_key = ("golden_agrees_with_float_int8_rounded" if qat
                   else "golden_agrees_with_float_sparse")
    if trained_key in report:
        report["golden_agrees_with_trained_forward"] = report[trained_key]
    if dense_checkpoint is not None:
        report["float_dense_accuracy"] = float((float_predictions(dense_checkpoint)
                                                == data.labels).mean())
        report["golden_minus_dense_points"] = 100 * (report["golden_int8_accuracy"]
                                                     - report["float_dense_accuracy"])
    if manifest:
        report.update(breakdown(data.names, data.labels, result.predictions, sparse, manifest))
    return report


#: SNR bands of the breakdown, in dB: [lo, hi) each; "clean" clips had no noise added.
SNR_BANDS = tuple((lo, lo + 5) for lo in range(0, 45, 5))
#: Wider ranges the issue's targets use: the noisy test (5-25 dB) and the original
#: synthetic set's own conditions (20-45 dB or no noise: "in distribution" for espeak-ng).
SNR_RANGES = {"5-25": (5, 25, False), "20-45+clean": (20, 45, True)}


def _stats(mask, golden_pred, float_pred, labels) -> dict:
    n = int(mask.sum())
    if n == 0:
        return {"inputs": 0}
    g, f, y = golden_pred[mask], float_pred[mask], labels[mask]
    return {"inputs": n, "golden_accuracy": float((g == y).mean()),
            "float_accuracy": float((f == y).mean()),
            "golden_agrees_with_float": float((g == f).mean())}


def breakdown(names, labels, golden_pred, float_pred, manifest) -> dict:
    """Accuracy per SNR band and per speech engine, golden and float.

    Parameters
    ----------
    names : list of str
        Example names of the split (``word/clip.wav``; silence windows
        ``_background_noise_/...@start x gain``).
    labels, golden_pred, float_pred : numpy.ndarray
        Per example.
    manifest : dict
        :func:`cosparse.sw.data.synth.read_manifest` of the data set: engine
        and SNR of every clip.

    Returns
    -------
    dict
        ``by_snr`` (5 dB bands, ``clean``, and ``silence`` for the noise
        windows), ``by_snr_range`` (:data:`SNR_RANGES`), ``by_engine``
        (each with ``all`` and the ranges, and ``held_out``: true when the
        data set trains on no clip of that engine). Each entry: inputs,
        golden and float accuracy, their agreement.
    """
    rows = [manifest.get(name) for name in names]
    if not any(rows):
        raise ValueError("the data set's clips.tsv lists none of the evaluated clips; "
                         "synthesise it again")
    labels, golden_pred, float_pred = map(np.asarray, (labels, golden_pred, float_pred))
    silence = np.array([row is None for row in rows])
    snr = np.array([np.nan if row is None or row["snr_db"] == "" else float(row["snr_db"])
                    for row in rows])
    clean = ~silence & np.isnan(snr)
    engine = np.array(["" if row is None else row["engine"] for row in rows])
    stats = lambda mask: _stats(mask, golden_pred, float_pred, labels)  # noqa: E731

    def in_range(lo, hi, with_clean):
        inside = (snr >= lo) & (snr < hi) if hi < SNR_BANDS[-1][1] else (snr >= lo) & (snr <= hi)
        return (inside | clean) if with_clean else inside

    by_snr = {f"{lo}-{hi}": stats(in_range(lo, hi, False)) for lo, hi in SNR_BANDS}
    by_snr["clean"] = stats(clean)
    by_snr["silence"] = stats(silence)
    ranges = {name: in_range(*spec) for name, spec in SNR_RANGES.items()}
    trained = {row["engine"] for row in manifest.values() if row["split"] == "train"}
    by_engine = {}
    for name in sorted(set(engine) - {""}):
        mine = engine == name
        by_engine[name] = {"held_out": name not in trained, "all": stats(mine),
                           **{r: stats(mine & mask) for r, mask in ranges.items()}}
    return {"by_snr": by_snr, "by_snr_range": {r: stats(m) for r, m in ranges.items()},
            "by_engine": by_engine}


def _print_breakdown(report) -> None:
    def cell(entry):
        if not entry.get("inputs"):
            return f"{'-':>7} {'-':>7} {'-':>7} {0:>6}"
        return (f"{100 * entry['golden_accuracy']:>6.2f}% {100 * entry['float_accuracy']:>6.2f}% "
                f"{100 * entry['golden_agrees_with_float']:>6.2f}% {entry['inputs']:>6}")

    print(f"\n{'SNR band (dB)':<22} {'golden':>7} {'float':>7} {'agree':>7} {'clips':>6}")
    for band, entry in report["by_snr"].items():
        print(f"{band:<22} {cell(entry)}")
    for band, entry in report["by_snr_range"].items():
        print(f"{band:<22} {cell(entry)}")
    print(f"\n{'engine':<22} {'golden':>7} {'float':>7} {'agree':>7} {'clips':>6}")
    for name, entry in report["by_engine"].items():
        tag = " (held out)" if entry["held_out"] else ""
        for key in ("all", *SNR_RANGES):
            print(f"{(name + tag if key == 'all' else '  ' + key + ' dB'):<22} "
                  f"{cell(entry[key])}")


def register_evaluate(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help="accuracy of the integer model vs the float models on a data set split",
        description="Accuracy of the golden int8 NetSpec, the float sparse checkpoint it was "
                    "exported from and, optionally, a float dense baseline, on one split; and "
                    "how often the int8 predictions agree with the float sparse model's, run "
                    "plainly and with the exporter's int8 roundings (for a quantisation-aware "
                    "fine-tuned checkpoint the latter is the forward pass it was trained with).")
    parser.add_argument("--dataset", required=True, metavar="DIR", help="GSC-layout data set")
    parser.add_argument("--split", default="testing", choices=("train", "validation", "testing"))
    parser.add_argument("--limit", type=inputs.positive(int), help="use only the first N clips")
    inputs.add_netspec_argument(parser)
    parser.add_argument("--checkpoint", help="float sparse checkpoint (default: shipped)")
    parser.add_argument("--dense-checkpoint", help="float dense baseline checkpoint")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="skip the accuracy per SNR band and per speech engine (reported "
                             "when the data set has a clips.tsv, as `cosparse data synth` writes)")
    parser.set_defaults(func=_run_evaluate)


def _run_evaluate(args):
    spec = inputs.load_netspec(args)
    checkpoint = args.checkpoint or assets.require(assets.DEFAULT_CHECKPOINT, "default checkpoint")
    normalisation = inputs.normalisation_for(spec)
    from .train import read_checkpoint
    for path in filter(None, (checkpoint, args.dense_checkpoint)):
        trained_on = read_checkpoint(path)["config"].get("features", "none")
        if trained_on != normalisation:
            raise ValueError(f"the checkpoint {path} was trained on features={trained_on!r} but "
                             f"the NetSpec records {normalisation!r}; pass checkpoints trained "
                             f"on the NetSpec's features (the one it was exported from)")
    data = inputs.from_dataset(args.dataset, args.split, args.limit, normalisation=normalisation)
    scales = netspec.load_metadata(args.netspec or assets.DEFAULT_NETSPEC).get("scales")
    output_scales = ([scales[layer.name]["output"] for layer in spec.packed_layers[:-1]]
                     if scales else None)
    from .data.synth import read_manifest

    manifest = read_manifest(args.dataset) if args.breakdown else {}
    report = evaluate(spec, checkpoint, data, args.dense_checkpoint, output_scales,
                      manifest=manifest)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for key, value in report.items():
            if key in ("by_snr", "by_snr_range", "by_engine"):
                continue
            shown = f"{100 * value:.2f}%" if isinstance(value, float) and "points" not in key \
                else (f"{value:+.2f}" if isinstance(value, float) else value)
            print(f"{key:<38} {shown}")
        if "by_snr" in report:
            _print_breakdown(report)
    return 0
