"""Train the GSC network; checkpoints and the ``cosparse train`` command.

The recipe follows the published GSC recipe (SGD, StepLR 0.9 per epoch;
docs/model.md) scaled for a
2-core CPU: batch 64 instead of 16 with momentum 0.9, which gets through an
epoch of ~15k clips in well under a minute. Augmentation is a random time
shift in feature space (frames rolled with zero fill, 0 being the -80 dB
floor), which keeps features valid int8 in [0, 127]. A gain change is not
offered: the features are dB relative to the clip's own maximum
(``power_to_db(ref=max)``), so a gain has no effect on them. Optional
augmentation that hides which speech engine spoke a clip (random EQ and
band limit, speed and vocal-tract-length warps, SpecAugment-style masks)
and extra digital / near-silence examples are in :mod:`cosparse.sw.augment`
(``eq_prob``, ``warp_prob``, ``mask_prob``, ``silence_extra``).

Quantisation-aware fine-tuning (``qat_from=CHECKPOINT``, ``cosparse train
--qat-from``) continues a trained model with the forward pass of
:mod:`cosparse.sw.export.fake_quant`: batch norm folded with its frozen
running statistics, weights, biases and activations rounded to the int8 grids
the exporter uses (straight-through gradients), k-WTA with its inference k
and no boosting. The activation scales are calibrated once, as the exporter
does, frozen, and stored in the checkpoints (``qat``), and the exporter then
uses them: the NetSpec computes that forward pass.

Learned complementary masks (``mask=``, ``cosparse train --mask``) come from
:mod:`cosparse.sw.model.masks`: its scheduler is called around every
optimiser step, adds the dense candidate weights of ``magnitude`` / ``gmp``
to the optimiser, and its state is saved in ``last.pt`` (``mask_state``);
every checkpoint records the settings (``mask``).

Every epoch writes a line to ``OUT/metrics.jsonl``, ``OUT/last.pt`` (model,
optimiser, scheduler, epoch and RNG states: ``resume=True`` continues
bit-exactly on CPU) and, when validation accuracy improves, ``OUT/best.pt``.
"""
import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .cache import atomic_path
from .model import GSCNet, NetConfig
from .model.masks import METHODS as MASK_METHODS
from .model.masks import MaskSettings
from .model.gsc_net import IFT_VARIANTS
from .model.ift import DEFAULT_SPARSITY as IFT_SPARSITY
from .model.ift import KEEP as IFT_KEEP
from .model.ift import transform as ift_transform
from .model.masks import make_scheduler as make_mask_scheduler

FORMAT = "cosparse-checkpoint"
VERSION = 1
QMAX = 127
"""Features are int8 in [0, QMAX]; the float model sees q / QMAX."""

#: Training arguments that must not change when a run is resumed.
_RESUME_FIXED = ("optimizer", "batch_size", "lr", "momentum", "weight_decay", "lr_gamma", "seed",
                 "augment", "max_shift", "lr_schedule", "qat", "init_from", "eq_prob",
                 "warp_prob", "mask_prob", "silence_extra", "mask")
#: Values of training arguments that checkpoints from before the argument existed imply.
_RESUME_IMPLIED = {"optimizer": "sgd", "lr_schedule": "step", "qat": None, "init_from": None,
                   "eq_prob": 0.0, "warp_prob": 0.0, "mask_prob": 0.0, "silence_extra": 0.0,
                   "mask": {"method": "static"}}


# ---- data --------------------------------------------------------------------

def _as_tensors(X, y):
    """int8 features and int64 labels as CPU tensors, validated."""
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    if X.dim() != 4 or X.dtype.is_floating_point:
        raise ValueError(f"features must be integer [n, C, H, W], got {X.dtype} {tuple(X.shape)}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"labels have shape {tuple(y.shape)}, expected ({X.shape[0]},)")
    return X.to(torch.int8), y.long()


def load_splits(data_root, splits, progress=True, normalisation="none"):
    """Features of ``splits`` from a GSC root via ``cosparse.sw.data``, with the
    feature ``normalisation`` (:data:`cosparse.sw.features.NORMALISATIONS`).

    Returns
    -------
    dict
        ``{split: (X int8 tensor, y int64 tensor)}``.
    """
    from .data.dataset import load_features

    out = {}
    for split in splits:
        X, y, _ = load_features(data_root, split, progress=progress, normalisation=normalisation)
        out[split] = _as_tensors(X, y)
    return out


def to_input(q):
    """Model input ``q / 127`` (float32) from integer features."""
    return q.float() / QMAX


def time_shift(q, max_shift, generator):
    """Roll each clip along time (last axis) by up to ``max_shift`` frames, zero fill.

    Parameters
    ----------
    q : torch.Tensor
        Integer features ``[B, C, mels, frames]``.
    max_shift : int
        Largest shift in frames, either direction; 0 returns ``q``.
    generator : torch.Generator
        Source of the shifts (CPU).
    """
    if max_shift == 0:
        return q
    batch, frames = q.shape[0], q.shape[-1]
    shift = torch.randint(-max_shift, max_shift + 1, (batch, 1), generator=generator)
    src = torch.arange(frames).unsqueeze(0) - shift  # [B, frames]
    valid = (src >= 0) & (src < frames)
    index = src.clamp(0, frames - 1).view(batch, 1, 1, frames).expand_as(q).to(q.device)
    shifted = q.gather(-1, index)
    return shifted * valid.view(batch, 1, 1, frames).to(q.device, q.dtype)


# ---- evaluation --------------------------------------------------------------

@torch.no_grad()
def predict(model, X, batch_size=1024):
    """Class predictions (argmax, lower index wins ties) in eval mode.

    Parameters
    ----------
    model : GSCNet
    X : array-like
        Integer features (int8 in [0, 127], scaled by 1/127 here) or an
        already-scaled floating-point model input.
    """
    X = torch.as_tensor(X)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        preds = []
        for start in range(0, X.shape[0], batch_size):
            xb = X[start:start + batch_size].to(device)
            xb = xb.float() if xb.dtype.is_floating_point else to_input(xb)
            preds.append(model(xb).argmax(1).cpu())  # argmax returns the first maximum
    finally:
        model.train(was_training)
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def evaluate(model, X, y, batch_size=1024):
    """Accuracy of ``model`` (eval mode) on features ``X`` and labels ``y``.

    See :func:`predict` for how ``X`` is interpreted.

    Returns
    -------
    float
        Fraction correct, in [0, 1].
    """
    y = torch.as_tensor(y)
    if y.numel() == 0:
        raise ValueError("cannot evaluate on an empty data set")
    return float((predict(model, X, batch_size) == y.cpu()).float().mean())


# ---- checkpoints -------------------------------------------------------------

def _checkpoint(model, metrics, qat=None, **extra):
    ckpt = {"format": FORMAT, "version": VERSION, "config": model.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "metrics": metrics, **extra}
    if qat is not None:
        ckpt["qat"] = qat
    return ckpt


def _save(obj, path):
    """Write atomically, so a stopped run never leaves a half-written checkpoint."""
    with atomic_path(path) as temporary:
        torch.save(obj, temporary)


def read_checkpoint(path):
    """Load and check a checkpoint dict (not the model).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When it is not a cosparse checkpoint or has an unsupported version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for junk
        raise ValueError(f"{path} is not a cosparse checkpoint (torch.load failed: {exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not a cosparse checkpoint (format {found!r}, "
                         f"expected {FORMAT!r})")
    if ckpt.get("version") != VERSION:
        raise ValueError(f"{path} has checkpoint version {ckpt.get('version')!r}; "
                         f"this cosparse reads version {VERSION}")
    for key in ("config", "state_dict"):
        if key not in ckpt:
            raise ValueError(f"{path} lacks the {key!r} entry")
    return ckpt


def load_checkpoint(path):
    """The trained :class:`GSCNet` of a checkpoint, in eval mode, on CPU (branches folded)."""
    ckpt = read_checkpoint(path)
    model = GSCNet(NetConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval().folded()  # Sparse Parallel's branches folded: what the exporter packs


# ---- training ----------------------------------------------------------------

def resolve_device(device):
    """``"auto"`` -> cuda when available, else cpu; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _reset_metrics(path, keep_upto):
    """Keep only the lines of epochs ``<= keep_upto`` (0: start an empty file).

    A run stopped between writing an epoch's metrics and its ``last.pt``
    would otherwise leave a duplicate line after resuming.
    """
    lines = path.read_text().splitlines() if path.is_file() and keep_upto > 0 else []
    kept = [line for line in lines if json.loads(line)["epoch"] <= keep_upto]
    path.write_text("".join(line + "\n" for line in kept))


def _batches(n, batch_size, generator):
    """Shuffled index batches; a trailing batch of one is dropped (BatchNorm needs 2)."""
    perm = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        if idx.numel() > 1:
            yield idx


def _steps_per_epoch(n, batch_size):
    """Batches :func:`_batches` yields for ``n`` clips (a trailing batch of one is dropped)."""
    return n // batch_size + (1 if n % batch_size > 1 else 0)


def _train_epoch(model, optimizer, X, y, args, generator, device, progress, epoch,
                 silence=None, masks=None):
    from tqdm import tqdm

    from . import augment
    from .data.gsc import SILENCE

    qat = args.get("qat")
    if qat is None:
        model.train()
        forward = model
    else:  # frozen batch norm statistics, inference k-WTA, int8 roundings
        from .export.fake_quant import quantised_forward
        model.eval()
        scales = qat["output_scales"]
        precision = _qat_precision(qat)
        forward = lambda xb: quantised_forward(model, xb, scales, precision)  # noqa: E731
    total_loss, correct, seen = 0.0, 0, 0
    steps = math.ceil(X.shape[0] / args["batch_size"])
    for idx in tqdm(_batches(X.shape[0], args["batch_size"], generator), total=steps,
                    desc=f"epoch {epoch}", unit="batch", disable=not progress, leave=False):
        q, yb = X[idx].cpu(), y[idx].cpu()
        if args["augment"]:
            q = time_shift(q, args["max_shift"], generator)
        q = augment.augment_batch(q, generator, eq=args.get("eq_prob", 0.0),
                                  warp_p=args.get("warp_prob", 0.0),
                                  mask=args.get("mask_prob", 0.0))
        if args.get("silence_extra", 0.0) > 0:
            q, yb = augment.add_silence(q, yb, silence, SILENCE, generator,
                                        args["silence_extra"])
        xb, yb = to_input(q).to(device), yb.to(device)
        if masks is not None:
            masks.before_forward()
        logits = forward(xb)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if masks is not None:
            masks.after_step(optimizer)
        total_loss += loss.item() * idx.numel()
        correct += int((logits.argmax(1) == yb).sum())
        seen += idx.numel()
    return {"train_loss": total_loss / seen, "train_acc": correct / seen}


def _start_state(config, args, out_dir, resume, device, init_state=None, total_steps=1):
    """Fresh or resumed (model, optimiser, scheduler, generator, epoch, best, masks).

    ``init_state``: state dict a fresh run starts from (quantisation-aware
    fine-tuning) instead of the random init. ``masks``: the mask scheduler
    of ``args["mask"]`` (None for static masks), whose extra parameters the
    optimiser also updates.
    """
    last = out_dir / "last.pt"
    ckpt = read_checkpoint(last) if resume else None
    if ckpt is not None:
        saved = NetConfig.from_dict(ckpt["config"])
        if config is not None and config != saved:
            raise ValueError(f"resume: config {config} differs from the checkpoint's {saved}")
        config = saved
        saved_args = {**_RESUME_IMPLIED, **ckpt["train_args"]}
        changed = [k for k in _RESUME_FIXED + (("epochs",) if "epochs" in args else ())
                   if saved_args.get(k) != args[k]]
        if changed:
            raise ValueError("resume: training arguments differ from the checkpoint's: " +
                             ", ".join(f"{k}={args[k]!r} (was {saved_args.get(k)!r})"
                                       for k in changed))
    config = NetConfig() if config is None else config
    torch.manual_seed(args["seed"])
    model = GSCNet(config)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device)
    masks = make_mask_scheduler(MaskSettings(**args["mask"]), model, total_steps, args["seed"])
    parameters = list(model.parameters()) + ([] if masks is None else masks.parameters())
    optimizer = make_optimizer(args["optimizer"], parameters, args)
    scheduler = make_scheduler(optimizer, args)
    generator = torch.Generator().manual_seed(args["seed"])
    epoch, best = 0, -1.0
    if ckpt is not None:
        model.load_state_dict(ckpt["state_dict"])
        if masks is not None:
            masks.load_state_dict(ckpt["mask_state"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        generator.set_state(ckpt["rng"]["data"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        epoch, best = ckpt["epoch"], ckpt["best_val_acc"]
    return model, optimizer, scheduler, generator, epoch, best, masks


def _qat_precision(qat):
    """The Precision a fine-tuning run trains at (int8 for runs that recorded none)."""
    from .export.export import Precision
    return Precision(**qat["precision"]) if "precision" in qat else Precision.int8()


def _qat_start(qat_from, config, data_root, X, calibration, progress):
    """Config, state dict and ``qat`` record (frozen output scales) of a fine-tuning run."""
    from .export.export import Precision, gsc_blocks, quantise_model

    ckpt = read_checkpoint(qat_from)
    if ckpt.get("qat") is not None:
        raise ValueError(f"{qat_from} is already quantisation-aware fine-tuned; start from the "
                         f"float checkpoint it came from")
    saved = NetConfig.from_dict(ckpt["config"])
    if config is not None and config != saved:
        raise ValueError(f"qat: config {config} differs from {qat_from}'s {saved}")
    if saved.branches > 1:
        raise ValueError(f"qat: {qat_from} is a Sparse Parallel network with {saved.branches} "
                         f"branches; quantisation-aware fine-tuning of branches is not supported "
                         f"(export it, or train with --ift none or wide)")
    if calibration < 1:
        raise ValueError(f"calibration must be >= 1 clip, got {calibration}")
    model = GSCNet(saved)
    model.load_state_dict(ckpt["state_dict"])
    if data_root is not None:
        from .inputs import from_dataset
        clips = from_dataset(data_root, "train", calibration, progress=progress,
                             normalisation=saved.features).x
    else:
        clips = X[:calibration].numpy()
    scales = [q.output_scale for q in quantise_model(model.eval(), clips)[:-1]]
    qat = {"from": str(qat_from), "output_scales": scales, "calibration_inputs": int(len(clips)),
           "precision": Precision().resolve(gsc_blocks(model)).as_dict()}
    return saved, ckpt["state_dict"], qat


#: NetConfig fields that only shape training, so a fine-tuning run (``init_from``) may change them.
TRAINING_ONLY_FIELDS = ("boost_strength", "boost_strength_factor", "duty_cycle_period",
                        "kwta_noise")


def _init_start(init_from, config):
    """Config and state dict of a run that starts from a trained checkpoint's weights."""
    ckpt = read_checkpoint(init_from)
    if ckpt.get("qat") is not None:
        raise ValueError(f"{init_from} is quantisation-aware fine-tuned; start from the float "
                         f"checkpoint it came from")
    saved = NetConfig.from_dict(ckpt["config"])
    if config is None:
        return saved, ckpt["state_dict"]
    changed = [f for f in saved.to_dict() if getattr(config, f) != getattr(saved, f)
               and f not in TRAINING_ONLY_FIELDS]
    if changed:
        raise ValueError(f"init_from: {init_from} has a different network ("
                         + ", ".join(f"{f}={getattr(saved, f)!r}, asked {getattr(config, f)!r}"
                                     for f in changed)
                         + f"); only {', '.join(TRAINING_ONLY_FIELDS)} may change")
    return config, ckpt["state_dict"]


def make_scheduler(optimizer, args):
    """Per-epoch learning rate: ``step`` (x ``lr_gamma`` every epoch) or ``cosine``.

    ``cosine`` anneals from ``lr`` to 0 over ``args["epochs"]`` epochs
    (``CosineAnnealingLR``), so the last epoch runs at a small but non-zero rate.
    """
    if args["lr_schedule"] == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=args["lr_gamma"])
    if args["lr_schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args["epochs"])
    raise ValueError(f"lr_schedule must be 'step' or 'cosine', got {args['lr_schedule']!r}")


def make_optimizer(name, parameters, args):
    """``sgd`` (the published recipe, with momentum) or ``adam`` (converges in fewer epochs)."""
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=args["lr"], momentum=args["momentum"],
                               weight_decay=args["weight_decay"])
    if name == "adam":
        return torch.optim.Adam(parameters, lr=args["lr"], weight_decay=args["weight_decay"])
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {name!r}")


def train(config=None, data_root=None, out_dir="runs/gsc", *, epochs=30, batch_size=64, lr=0.02,
          optimizer="sgd", momentum=0.9, weight_decay=0.0, lr_gamma=0.9, lr_schedule="step", seed=0,
          augment=True, max_shift=3, device="auto", resume=False, progress=True, data=None,
          threads=None, qat_from=None, calibration=2000, init_from=None, eq_prob=0.0,
          warp_prob=0.0, mask_prob=0.0, silence_extra=0.0, mask=None):
    """Train a :class:`GSCNet`, checkpointing every epoch.

    Parameters
    ----------
    config : NetConfig, optional
        Network; default the sparse-sparse :class:`NetConfig`. On resume,
        ``None`` takes the checkpoint's; a different one is an error.
    data_root : path-like, optional
        GSC root read with ``cosparse.sw.data.dataset.load_features``
        (splits "train" and "validation").
    out_dir : path-like
        Receives ``metrics.jsonl``, ``last.pt`` and ``best.pt``.
    epochs : int
        Total epochs (a resumed run continues up to this number).
    optimizer : {"sgd", "adam"}
        SGD with momentum (the published recipe) or Adam.
    batch_size, lr, momentum, weight_decay, lr_gamma : optimiser settings
        momentum is SGD's; ``lr_gamma`` the step schedule's factor per epoch.
    lr_schedule : {"step", "cosine"}
        ``StepLR(step_size=1, gamma=lr_gamma)`` or cosine annealing from
        ``lr`` to 0 over ``epochs`` (a resumed cosine run must keep ``epochs``).
    seed : int
        Seeds model init, data order and augmentation.
    augment : bool
        Random time shift of up to ``max_shift`` frames.
    eq_prob, warp_prob, mask_prob : float
        Share of each batch given a random EQ / band limit, a speed and
        vocal-tract-length warp, SpecAugment-style masks
        (:mod:`cosparse.sw.augment`); 0 (default) leaves training as it was.
    silence_extra : float
        Share of each batch replaced by digital silence and near-silence
        labelled "silence" (:func:`cosparse.sw.augment.silence_bank`).
    mask : str or MaskSettings, optional
        How the complementary masks are learned
        (:mod:`cosparse.sw.model.masks`): a method name of
        :data:`~cosparse.sw.model.masks.METHODS` with default settings, or a
        :class:`~cosparse.sw.model.masks.MaskSettings`. ``None`` /
        ``"static"``: the random frozen masks, training exactly as before.
        With ``magnitude`` / ``gmp``, validation scores of the dense
        candidate phase are logged but ``best.pt`` is only written once the
        mask is committed. Recorded in every checkpoint (``mask``).
    device : str
        "auto" (cuda if available), "cpu", "cuda", ...
    resume : bool
        Continue from ``out_dir/last.pt``.
    progress : bool
        Show per-batch progress bars and print per-epoch lines.
    data : dict, optional
        ``{"train": (X, y), "validation": (X, y)}`` arrays instead of
        ``data_root`` (X integer features in [0, 127]).
    threads : int, optional
        torch CPU threads; default ``os.cpu_count()``.
    qat_from : path-like, optional
        Quantisation-aware fine-tuning of this checkpoint (see the module
        docstring): ``config`` must be None or the checkpoint's; validation
        accuracy is that of the int8-rounded forward pass.
    calibration : int
        Training clips that calibrate the frozen activation scales of
        quantisation-aware fine-tuning: the exporter's clips
        (``cosparse.sw.inputs.from_dataset(data_root, "train", calibration)``),
        or the first ``calibration`` of ``data["train"]``.
    init_from : path-like, optional
        Start from this float checkpoint's weights, batch-norm statistics
        and duty cycles (fresh optimiser and schedule): fine-tuning.
        ``config`` None takes the checkpoint's; otherwise it may differ
        from it only in :data:`TRAINING_ONLY_FIELDS`.

    Returns
    -------
    dict
        Final epoch's metrics plus ``best_val_acc``.
    """
    if (data is None) == (data_root is None):
        raise ValueError("pass exactly one of data_root and data")
    if epochs < 1 or batch_size < 2:
        raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {epochs} and {batch_size}")
    torch.set_num_threads(threads or os.cpu_count() or 1)
    device = resolve_device(device)
    normalisation = _run_features(config, out_dir, resume, qat_from, init_from)
    if normalisation != "none" and max(eq_prob, warp_prob, mask_prob) > 0:
        raise ValueError(f"eq_prob, warp_prob and mask_prob transform features='none' images "
                         f"(dB relative to the clip's maximum); with features={normalisation!r} "
                         f"leave them at 0 (a per-band normalisation removes fixed per-band "
                         f"gains itself)")
    splits = ({s: _as_tensors(*data[s]) for s in ("train", "validation")} if data is not None
              else load_splits(data_root, ("train", "validation"), progress, normalisation))
    (X, y), (Xv, yv) = splits["train"], splits["validation"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    args = dict(optimizer=optimizer, batch_size=batch_size, lr=lr, momentum=momentum,
                weight_decay=weight_decay,
                lr_gamma=lr_gamma, lr_schedule=lr_schedule, seed=seed, augment=augment,
                max_shift=max_shift, eq_prob=eq_prob, warp_prob=warp_prob, mask_prob=mask_prob,
                silence_extra=silence_extra)
    for name in ("eq_prob", "warp_prob", "mask_prob", "silence_extra"):
        if not 0.0 <= args[name] <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {args[name]!r}")
    mask = MaskSettings() if mask is None else (
        MaskSettings(method=mask) if isinstance(mask, str) else mask)
    if not isinstance(mask, MaskSettings):
        raise TypeError(f"mask must be a method name or MaskSettings, got {type(mask).__name__}")
    args["mask"] = mask.as_dict()
    if mask.method != "static" and qat_from is not None:
        raise ValueError(f"--mask {mask.method} cannot be combined with quantisation-aware "
                         f"fine-tuning, which keeps the trained mask; learn the mask first")
    if lr_schedule == "cosine" or mask.method != "static":
        args["epochs"] = epochs  # the schedule's length: fixed on resume
    elif lr_schedule != "step":
        raise ValueError(f"lr_schedule must be 'step' or 'cosine', got {lr_schedule!r}")
    init_state = None
    args["qat"] = None
    if qat_from is not None and init_from is not None:
        raise ValueError("pass at most one of qat_from and init_from")
    args["init_from"] = None if init_from is None else str(init_from)
    if init_from is not None:
        config, init_state = _init_start(init_from, config)
    if qat_from is not None:
        config, init_state, args["qat"] = _qat_start(qat_from, config, data_root, X, calibration,
                                                     progress)
    model, optimizer, scheduler, generator, start, best, masks = _start_state(
        config, args, out_dir, resume, device, init_state,
        total_steps=epochs * _steps_per_epoch(X.shape[0], batch_size))
    qat = None  # the checkpoints' record of a fine-tuning run
    if args["qat"] is not None:
        from .export.fake_quant import predict as qat_predict

        def val_accuracy():
            preds = qat_predict(model.cpu(), Xv.numpy(), args["qat"]["output_scales"],
                                precision=_qat_precision(args["qat"]))
            model.to(device)
            return float((torch.as_tensor(preds) == yv).float().mean())

        if start == 0:
            qat = {**args["qat"], "start_val_acc": val_accuracy()}
            if progress:
                print(f"quantisation-aware fine-tuning of {qat_from}: int8-rounded val "
                      f"{qat['start_val_acc']:.4f} before; output scales "
                      + ", ".join(f"{s:.5g}" for s in qat["output_scales"]), flush=True)
        else:
            qat = read_checkpoint(out_dir / "last.pt")["qat"]
    else:
        def val_accuracy():
            return evaluate(model, Xv, yv)
    _reset_metrics(out_dir / "metrics.jsonl", start)
    Xd, yd = X.to(device), y.to(device)
    silence = None
    if silence_extra > 0:
        from .augment import silence_bank
        silence = silence_bank(seed, normalisation=model.config.features)
    metrics = {}
    for epoch in range(start + 1, epochs + 1):
        tic = time.perf_counter()
        lr_now = optimizer.param_groups[0]["lr"]
        metrics = _train_epoch(model, optimizer, Xd, yd, args, generator, device, progress, epoch,
                               silence, masks)
        scheduler.step()
        if qat is None:
            model.update_boost_strength()
        metrics = {"epoch": epoch, **metrics, "val_acc": val_accuracy(), "lr": lr_now,
                   "seconds": round(time.perf_counter() - tic, 3)}
        deployable = masks is None or masks.deployable  # not the dense candidates of pruning
        improved = deployable and metrics["val_acc"] > best
        best = max(best, metrics["val_acc"]) if deployable else best
        metrics["best_val_acc"] = best
        with open(out_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(metrics) + "\n")
        if progress:
            print(f"epoch {epoch}/{epochs}: loss {metrics['train_loss']:.4f} "
                  f"train {metrics['train_acc']:.4f} val {metrics['val_acc']:.4f} "
                  f"lr {lr_now:.4g} ({metrics['seconds']:.1f} s)", flush=True)
        if improved:
            _save(_checkpoint(model, metrics, qat, mask=args["mask"]), out_dir / "best.pt")
        extra = {} if masks is None else {"mask_state": masks.state_dict()}
        _save(_checkpoint(model, metrics, qat, epoch=epoch, best_val_acc=best, train_args=args,
                          optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                          rng={"data": generator.get_state(), "torch": torch.get_rng_state()},
                          mask=args["mask"], **extra),
              out_dir / "last.pt")
    if masks is not None:
        masks.finish()
    return metrics


def _run_features(config, out_dir, resume, qat_from, init_from):
    """The feature normalisation a run trains on: its config's, else (config None) that of the
    checkpoint it resumes or starts from, else "none"."""
    if config is not None:
        return config.features
    for path in (Path(out_dir) / "last.pt" if resume else None, qat_from, init_from):
        if path is not None and Path(path).is_file():
            return NetConfig.from_dict(read_checkpoint(path)["config"]).features
    return "none"


# ---- command line ------------------------------------------------------------

_OVERRIDES = {  # flag -> (NetConfig field, type)
    "--n1": ("n1", int), "--n2": ("n2", int), "--n3": ("n3", int), "--n4": ("n4", int),
    "--conv1-density": ("conv1_density", float), "--conv2-density": ("conv2_density", float),
    "--hidden-density": ("hidden_density", float), "--hidden": ("hidden", int),
    "--boost-strength": ("boost_strength", float), "--mask-seed": ("mask_seed", int),
    "--kwta-noise": ("kwta_noise", float), "--pattern": ("pattern", str),
    "--features": ("features", str),
}
_OVERRIDE_HELP = {
    "--pattern": "structure of the complementary assignments: random (default), nm:N:M (each "
                 "kernel owns N of every M consecutive slots; M = n*N), block:K (one kernel per "
                 "block of K inputs, or of K input channels at one kernel offset), for every "
                 "layer with n > 1, or LAYER=PATTERN,... (with --mask static, magnitude or gmp; "
                 "docs/model.md)",
    "--features": "per-band feature normalisation the network is trained on: none (default), "
                  "band-mean (each mel band minus its mean over the clip's frames, in dB) or "
                  "band-floor (minus its 10th percentile over the frames; "
                  "docs/data.md); the NetSpec records it and every command applies it",
}


def add_arguments(parser):
    """Add the ``train`` options to an argparse parser."""
    parser.add_argument("--data", required=True, help="GSC root (see `cosparse data`)")
    parser.add_argument("--out", required=True, help="output folder for checkpoints and metrics")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                        help="sgd (default, the published recipe) or adam")
    parser.add_argument("--lr-schedule", choices=("step", "cosine"), default="step",
                        help="step (default: x0.9 every epoch) or cosine (to 0 over --epochs)")
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-augment", action="store_true", help="disable the random time shift")
    parser.add_argument("--eq-prob", type=float, default=0.0,
                        help="share of clips given a random EQ and band limit (default 0)")
    parser.add_argument("--warp-prob", type=float, default=0.0,
                        help="share of clips given a speed and vocal-tract-length warp (default 0)")
    parser.add_argument("--mask-prob", type=float, default=0.0,
                        help="share of clips given SpecAugment-style masks (default 0)")
    parser.add_argument("--silence-extra", type=float, default=0.0,
                        help="share of each batch replaced by digital / near-silence labelled "
                             "silence (default 0)")
    parser.add_argument("--mask", choices=MASK_METHODS, default="static",
                        help="how the complementary masks are learned: static (default: random, "
                             "frozen), magnitude (dense candidates, one-shot prune), gmp (gradual "
                             "magnitude pruning), set or rigl (dynamic sparse training)")
    parser.add_argument("--mask-end", type=float, default=None,
                        help="fraction of training at which the mask is final (default 0.5 for "
                             "magnitude/gmp, 0.75 for set/rigl)")
    parser.add_argument("--mask-drop", type=float, default=0.3,
                        help="set/rigl: fraction of slots dropped at the first update, "
                             "cosine-decayed (default 0.3)")
    parser.add_argument("--mask-every", type=int, default=50,
                        help="batches between mask updates of gmp/set/rigl (default 50)")
    parser.add_argument("--ift", choices=IFT_VARIANTS, default="none",
                        help="Sparse Iso-FLOP Transformation at equal packed slots: none "
                             "(default), wide (widths x sqrt(1/(1-s)), n grown to keep the "
                             "slots) or parallel (conv1/conv2/fc1 trained as 1/(1-s) "
                             "batch-normalised branches, folded for export; docs/model.md)")
    parser.add_argument("--ift-sparsity", type=float, default=IFT_SPARSITY,
                        help=f"the s of --ift (default {IFT_SPARSITY}: width x2, 4 branches)")
    parser.add_argument("--ift-keep", choices=IFT_KEEP, default="winners",
                        help="--ift wide: the k-WTAs keep the number of winners (default: about "
                             "the same interval) or the density (the same useful MACs)")
    parser.add_argument("--dense", action="store_true",
                        help="dense baseline: n=1 everywhere, ReLU instead of k-WTA")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--qat-from", metavar="CHECKPOINT",
                        help="quantisation-aware fine-tuning of this trained checkpoint: the "
                             "forward pass rounds to the exporter's int8 grids (scales "
                             "calibrated once and frozen); use a low --lr")
    parser.add_argument("--init-from", metavar="CHECKPOINT",
                        help="fine-tune: start from this float checkpoint's weights with a fresh "
                             "optimiser (its config; only training-time options such as "
                             "--kwta-noise may be overridden)")
    parser.add_argument("--calibration", type=int, default=2000,
                        help="training clips calibrating the frozen scales of --qat-from "
                             "(default 2000, as `cosparse export`)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: all cores; 1 is faster on a busy machine)")
    for flag, (field, kind) in _OVERRIDES.items():
        parser.add_argument(flag, type=kind, default=None,
                            help=_OVERRIDE_HELP.get(flag, f"override NetConfig.{field}"))
    parser.set_defaults(func=run_cli)
    return parser


def config_from_args(args):
    """NetConfig from parsed ``train`` arguments (``--dense`` then overrides)."""
    overrides = {field: getattr(args, field) for field, _ in _OVERRIDES.values()
                 if getattr(args, field) is not None}
    config = NetConfig.dense_baseline(**overrides) if args.dense else NetConfig(**overrides)
    return ift_transform(config, args.ift, args.ift_sparsity, args.ift_keep)


def run_cli(args):
    """Entry point of ``cosparse train``; returns the process exit status."""
    config = config_from_args(args)
    if args.qat_from is not None or args.init_from is not None:
        # the checkpoint's config, unless something was overridden
        overridden = args.dense or args.ift != "none" or any(
            getattr(args, f) is not None for f, _ in _OVERRIDES.values())
        config = config if overridden else None
    train(config, args.data, args.out, epochs=args.epochs,
          batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
          lr_schedule=args.lr_schedule, momentum=args.momentum,
          weight_decay=args.weight_decay, seed=args.seed, augment=not args.no_augment,
          device=args.device, resume=args.resume, progress=not args.quiet, threads=args.threads,
          qat_from=args.qat_from, calibration=args.calibration, init_from=args.init_from,
          eq_prob=args.eq_prob, warp_prob=args.warp_prob, mask_prob=args.mask_prob,
          silence_extra=args.silence_extra,
          mask=MaskSettings(args.mask, args.mask_end, args.mask_drop, args.mask_every))
    return 0


def register_cli(subparsers):
    """Add the ``train`` subcommand to ``cosparse``'s subparsers."""
    return add_arguments(subparsers.add_parser("train", help="train the GSC network"))


def main(argv=None):
    """``python -m cosparse.sw.train``: the same options as ``cosparse train``."""
    parser = add_arguments(argparse.ArgumentParser(prog="python -m cosparse.sw.train"))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
