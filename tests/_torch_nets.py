"""Random sequential complementary-sparse PyTorch nets for the export tests."""

import numpy as np
import torch
from torch import nn

from cosparse.sw.model import CompSparseConv2d, CompSparseLinear, KWinners, KWinners2d


def random_sequential(seed: int, *, in_shape=None, strided: bool = False,
                      hardware: bool = False):
    """``(model, in_shape)``: 1-2 conv blocks, a flatten, 1-2 linear blocks, random everything.

    ``strided`` also draws each convolution's stride (1 to 2) and zero
    padding (0 to K - 1), the first one never stride 1 without padding.
    ``hardware``: only what the generator builds (a global k-WTA after a
    convolution exports and runs in the golden model, but has no hardware
    unit yet: a local one takes its place); the draws are the same.

    Conv blocks: conv, BatchNorm2d (affine or not) sometimes, MaxPool2d(2)
    sometimes, then a local or global KWinners2d or a ReLU (or nothing);
    linear blocks: linear, BatchNorm1d sometimes, KWinners or ReLU; the last
    layer is a bare linear. Batch-norm statistics are random, as after
    training.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    c, h, w = in_shape or (int(rng.integers(1, 3)), int(rng.integers(6, 10)),
                           int(rng.integers(6, 10)))
    shape = (c, h, w)
    layers = []
    for index in range(int(rng.integers(1, 3))):
        k = int(rng.integers(1, min(h, w, 3) + 1))
        out = int(rng.integers(2, 9))
        n = int(rng.integers(1, 5))
        stride, pad = ((int(rng.integers(1, 3)), int(rng.integers(0, k))) if strided else (1, 0))
        if strided and index == 0 and (stride, pad) == (1, 0):  # at least one strided/padded
            stride, pad = (2, 0) if k == 1 else (1, 1)
        layers.append(CompSparseConv2d(c, out, k, n, seed=seed + index, stride=stride,
                                       padding=pad))
        c, h, w = out, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        if rng.random() < 0.7:
            layers.append(nn.BatchNorm2d(c, affine=bool(rng.random() < 0.5)))
        if h % 2 == 0 and w % 2 == 0 and rng.random() < 0.6:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        choice = rng.random()
        if choice < 0.4:
            layers.append(KWinners2d(c, float(rng.uniform(0.2, 0.8)), local=True))
        elif choice < 0.6:
            layers.append(KWinners2d(c, float(rng.uniform(0.1, 0.5)), local=hardware))
        elif choice < 0.9:
            layers.append(nn.ReLU())
    layers.append(nn.Flatten())
    features = c * h * w
    for index in range(int(rng.integers(0, 2))):
        out = int(rng.integers(8, 33))
        layers.append(CompSparseLinear(features, out, int(rng.integers(1, 5)),
                                       seed=seed + 10 + index))
        if rng.random() < 0.6:
            layers.append(nn.BatchNorm1d(out))
        layers.append(KWinners(out, float(rng.uniform(0.2, 0.6))) if rng.random() < 0.6
                      else nn.ReLU())
        features = out
    layers.append(CompSparseLinear(features, int(rng.integers(2, 7)), int(rng.integers(1, 3)),
                                   seed=seed + 20))
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.3, 2.0)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
    return model.eval(), shape


def train_a_few_steps(model, x: torch.Tensor, steps: int = 3, seed: int = 0):
    """A few SGD steps on random labels, so weights and statistics move as in training."""
    torch.manual_seed(seed)
    model.train()
    classes = list(model.modules())[-1].out_features
    labels = torch.randint(0, classes, (len(x),))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x), labels).backward()
        optimiser.step()
    return model.eval()


def check_golden_follows_pytorch(model, spec, calibration, scale, x):
    """The golden model's logits on int8 ``x`` are PyTorch's with the exporter's roundings.

    PyTorch runs the model with fake quantisation at the exporter's own
    output scales (as recorded in the NetSpec's requantisation). Equal on
    nearly every input; where not, a 16-bit requantisation multiplier
    (m / 2**s rather than the exact real scale) moved one rounding by one
    step. Returns the golden result.
    """
    from cosparse.sw import golden
    from cosparse.sw.export import model_blocks, quantise_model
    from cosparse.sw.export.fake_quant import quantised_logits
    result = golden.run(spec, x)
    blocks = model_blocks(model)
    quantised = quantise_model(model, calibration, blocks, input_scale=scale)
    reference = quantised_logits(model, x, [q.output_scale for q in quantised[:-1]],
                                 blocks=blocks, input_scale=scale).numpy()
    logits = result.logits * quantised[-1].output_scale
    same = np.all(np.isclose(logits, reference, rtol=1e-6, atol=1e-9), axis=1)
    assert same.mean() >= 0.9, spec.packed_layers[-1].name
    assert np.abs(logits - reference).max() <= 0.05 * np.abs(reference).max()
    assert (reference.argmax(1) == result.predictions).mean() >= 0.97
    return result
