"""Tests of the float model: complementary layers, k-WTA, GSCNet."""
import pytest
import torch
import torch.nn.functional as F

from cosparse.sw.model import (EMPTY, CompSparseConv2d, CompSparseLinear, GSCNet, KWinners,
                               KWinners2d, NetConfig, STAGES, complementary_assignment,
                               group_sizes, kwta, kwta_mask)


def _check_assignment(slot_kernel, out_features, fan_in, n):
    sizes = group_sizes(out_features, n)
    assert tuple(slot_kernel.shape) == (len(sizes), fan_in)
    for g, n_g in enumerate(sizes):
        ids = slot_kernel[g]
        # Each slot has exactly one kernel (disjoint), all in range (covering).
        assert ids.min() >= 0 and ids.max() < n_g
        counts = torch.bincount(ids, minlength=n_g)
        assert counts.sum() == fan_in
        assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("out_features,fan_in,n", [(64, 25, 4), (64, 1600, 8), (10, 7, 4),
                                                   (13, 30, 5), (5, 3, 4), (12, 1500, 1)])
def test_assignment_disjoint_covering_balanced(out_features, fan_in, n):
    gen = torch.Generator().manual_seed(3)
    _check_assignment(complementary_assignment(out_features, fan_in, n, gen), out_features,
                      fan_in, n)


def test_assignment_partial_last_group_and_seeded():
    assert group_sizes(10, 4) == [4, 4, 2]
    a = complementary_assignment(10, 9, 4, torch.Generator().manual_seed(1))
    b = complementary_assignment(10, 9, 4, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert set(a[2].tolist()) == {0, 1}


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        CompSparseLinear(4, 4, 0)
    with pytest.raises(TypeError, match="in_features"):
        CompSparseLinear(4.0, 4, 2)
    with pytest.raises(ValueError, match=r"slot_kernel\[0, 1\] = 5"):
        CompSparseLinear(3, 4, 4, slot_kernel=torch.tensor([[0, 5, 1]]))


def _support_mask(layer):
    """Expected boolean mask [out, fan_in] from slot_kernel, built naively."""
    mask = torch.zeros(layer.out_features, layer.fan_in, dtype=torch.bool)
    for g in range(layer.groups):
        for f in range(layer.fan_in):
            j = int(layer.slot_kernel[g, f])
            if j != EMPTY:
                mask[g * layer.n + j, f] = True
    return mask


@pytest.mark.parametrize("make", [lambda: CompSparseLinear(30, 13, 5, seed=2),
                                  lambda: CompSparseConv2d(3, 10, 3, 4, seed=5)])
def test_masks_stay_zero_through_training(make):
    layer = make()
    mask = _support_mask(layer)
    weight = layer.dense_weight().reshape(layer.out_features, -1)
    assert torch.all(weight[~mask] == 0) and torch.all(weight[mask] != 0)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    in_shape = (8, 30) if isinstance(layer, CompSparseLinear) else (8, 3, 6, 6)
    for _ in range(5):
        opt.zero_grad()
        layer(torch.randn(in_shape)).pow(2).sum().backward()
        opt.step()
    weight = layer.dense_weight().reshape(layer.out_features, -1)
    assert torch.all(weight[~mask] == 0)
    per_kernel = (weight != 0).sum(1)
    sizes = group_sizes(layer.out_features, layer.n)
    n_g = torch.tensor([s for s in sizes for _ in range(s)])
    assert torch.all(per_kernel >= layer.fan_in // n_g)
    assert torch.all(per_kernel <= -(-layer.fan_in // n_g))
    assert torch.equal(per_kernel, layer.kernel_fan_in())


def test_packed_weight_lands_where_slot_kernel_says():
    layer = CompSparseConv2d(2, 6, 3, 4, seed=1)
    w = layer.dense_weight()
    g, f = 1, 13
    j = int(layer.slot_kernel[g, f])
    c, rest = divmod(f, 9)
    ky, kx = divmod(rest, 3)
    assert w[g * 4 + j, c, ky, kx] == layer.packed[g, f]


def test_n1_is_dense():
    torch.manual_seed(0)
    dense = torch.nn.Linear(7, 5)
    sparse = CompSparseLinear(7, 5, 1)
    with torch.no_grad():
        sparse.packed.copy_(dense.weight)
        sparse.bias.copy_(dense.bias)
    x = torch.randn(4, 7)
    assert torch.equal(sparse(x), dense(x))
    conv = CompSparseConv2d(3, 4, 3, 1)
    x = torch.randn(2, 3, 6, 6)
    ref = F.conv2d(x, conv.packed.detach().view(4, 3, 3, 3), conv.bias)
    assert torch.allclose(conv(x), ref)


def test_empty_slots_are_ignored():
    sk = torch.tensor([[0, EMPTY, 1, 0], [EMPTY, 0, 1, 1]])
    layer = CompSparseLinear(4, 4, 2, slot_kernel=sk)
    assert layer.packed[0, 1] == 0 and layer.packed[1, 0] == 0
    w = layer.dense_weight()
    assert torch.equal((w != 0).sum(1), torch.tensor([2, 1, 1, 2]))
    assert w[:, 1].count_nonzero() == 1 and w[:, 0].count_nonzero() == 1


def test_state_dict_round_trip_rebuilds_scatter():
    a, b = CompSparseLinear(20, 9, 3, seed=1), CompSparseLinear(20, 9, 3, seed=2)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.dense_weight(), b.dense_weight())
    assert a.state_dict()["slot_kernel"].dtype == torch.int16


def test_init_variance_follows_real_fan_in():
    layer = CompSparseLinear(1600, 1500, 20, seed=0)
    std = layer.packed.std().item()
    expected = (1 / 80) ** 0.5 / 3 ** 0.5  # U(-1/sqrt(80), 1/sqrt(80))
    assert abs(std - expected) / expected < 0.05


# ---- k-WTA -------------------------------------------------------------------

def test_kwta_ties_go_to_lower_index():
    x = torch.zeros(2, 6)
    assert kwta_mask(x, 2, dim=1).tolist() == [[True, True, False, False, False, False]] * 2
    x = torch.tensor([[1.0, 3.0, 2.0, 2.0, 5.0, 2.0]])
    assert kwta_mask(x, 3, dim=1).tolist() == [[False, True, True, False, True, False]]
    assert kwta_mask(x, 5, dim=1).tolist() == [[False, True, True, True, True, True]]
    ints = torch.tensor([[7, 7, 7, 9, 7]], dtype=torch.int32)
    assert kwta_mask(ints, 2, dim=1).tolist() == [[True, False, False, True, False]]


def test_kwta_exact_k_random_with_many_ties():
    x = torch.randint(0, 4, (50, 64, 3, 3)).float()
    mask = kwta_mask(x, 8, dim=1)
    assert torch.all(mask.sum(1) == 8)
    # Same as a stable descending sort taking the first k.
    order = torch.sort(x, dim=1, descending=True, stable=True).indices[:, :8]
    ref = torch.zeros_like(mask).scatter(1, order, True)
    assert torch.equal(mask, ref)
    assert torch.equal(kwta(x, 8, dim=1), torch.where(ref, x, 0))


def test_kwta_bad_k():
    with pytest.raises(ValueError, match="k = 7"):
        kwta_mask(torch.zeros(2, 6), 7, dim=1)


def test_kwinners_global_ties_flat_chw_order():
    m = KWinners2d(2, 0.25, local=False).eval()
    x = torch.ones(1, 2, 2, 2)
    out = m(x)
    assert out.flatten().tolist() == [1, 1, 0, 0, 0, 0, 0, 0]


def test_kwinners2d_local_k_per_position():
    m = KWinners2d(64, 0.125)
    x = torch.randn(4, 64, 5, 5)
    for mode in (True, False):
        m.train(mode)
        assert torch.all((m(x) != 0).sum(1) == 8)
    assert (m.k, m.k_inference) == (8, 8)


def test_boosting_changes_selection_in_train_only():
    m = KWinners(4, 0.25, boost_strength=10.0)
    m.duty_cycle.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    x = torch.tensor([[2.0, 1.0, 0.5, 0.1]])
    m.eval()
    assert m(x).tolist() == [[2.0, 0, 0, 0]]
    assert m.duty_cycle.tolist() == [1.0, 0, 0, 0]  # no update in eval
    m.train()
    assert m(x).tolist() == [[0, 1.0, 0, 0]]  # unboosted value passes on
    assert m.duty_cycle[1] > 0 and m.learning_iterations == 1


def test_duty_cycle_running_mean_and_boost_decay():
    m = KWinners2d(4, 0.25, duty_cycle_period=10)
    x = torch.zeros(5, 4, 2, 2)
    x[:, 2] = 1.0  # channel 2 always wins
    m(x)
    assert torch.allclose(m.duty_cycle, torch.tensor([0, 0, 1.0, 0]))
    m(torch.zeros(5, 4, 2, 2) - x)  # now channel 2 loses; boosted order favours others
    assert 0 < m.duty_cycle[2] < 1
    m.update_boost_strength()
    assert m.boost_strength.item() == pytest.approx(0.9)


def test_training_noise_perturbs_selection_in_train_only():
    torch.manual_seed(0)
    x = torch.linspace(0, 1, 64).repeat(2, 1)  # near-ties everywhere at noise 0.5
    m = KWinners(64, 0.125, boost_strength=0.0, noise=0.5)
    m.eval()
    assert torch.equal(m(x), kwta(x, 8, dim=1))  # eval: no noise, no randomness
    m.train()
    out = m(x)
    assert torch.all((out != 0).sum(1) == 8)
    assert not torch.equal(out != 0, kwta(x, 8, dim=1) != 0)  # other winners ...
    assert not torch.all(torch.isin(out[out != 0], x))  # ... passing on noisy values
    m2d = KWinners2d(64, 0.125, boost_strength=0.0, noise=0.5).train()
    x2d = x.view(1, 2, 64).permute(0, 2, 1).reshape(1, 64, 2, 1)
    assert not torch.equal(m2d(x2d) != 0, kwta(x2d, 8, dim=1) != 0)
    with pytest.raises(ValueError, match="noise must be >= 0, got -0.1"):
        KWinners(64, 0.125, noise=-0.1)


def test_gscnet_kwta_noise_reaches_every_kwta():
    net = GSCNet(NetConfig(kwta_noise=0.2))
    assert [m.noise for m in net.kwinners().values()] == [0.2, 0.2, 0.2]
    # Checkpoints written before the option existed load with no noise.
    old = {k: v for k, v in NetConfig().to_dict().items() if k != "kwta_noise"}
    assert NetConfig.from_dict(old).kwta_noise == 0.0


# ---- GSCNet ------------------------------------------------------------------

def test_gscnet_shapes_and_activation_keys():
    net = GSCNet()
    x = torch.rand(3, 1, 32, 32)
    acts = net.forward_with_activations(x)
    assert list(acts) == list(STAGES)
    assert acts["conv1"].shape == (3, 64, 28, 28)
    assert acts["pool1"].shape == (3, 64, 14, 14)
    assert acts["conv2"].shape == (3, 64, 10, 10)
    assert acts["flatten"].shape == (3, 1600)
    assert acts["fc2"].shape == (3, 12)
    net.eval()
    acts = net.forward_with_activations(x)
    assert torch.equal(acts["fc2"], net(x))
    for name in ("kwta1", "kwta2", "kwta3"):
        assert (acts[name] != 0).float().mean() <= 0.125 + 1e-6


def test_gscnet_parameter_counts():
    counts = GSCNet().count_parameters()
    assert counts["conv1"]["packed"] == 400 and counts["conv2"]["packed"] == 12800
    assert counts["fc1"]["packed"] == 120000 and counts["fc2"]["packed"] == 4500
    assert counts["total"]["dense"] == 2522000
    # Every structural weight is non-zero except the rare exact 0.0 a random init draws.
    assert 137700 - 5 <= GSCNet().nonzero_weights()["total"] <= 137700


def test_dense_baseline_uses_relu():
    net = GSCNet(NetConfig.dense_baseline())
    assert isinstance(net.kwta1, torch.nn.ReLU) and net.conv2.n == 1
    # Structural count: a random init can draw an exact 0.0 now and then.
    assert net.count_parameters()["total"]["packed"] == 2522000
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 12)


@pytest.mark.parametrize("bad,match", [({"n2": 0}, "n2 must be >= 1, got 0"),
                                       ({"hidden_density": 1.5}, "hidden_density"),
                                       ({"conv2_kernel": 14}, "conv2_kernel = 14"),
                                       ({"in_shape": (1, 32)}, "in_shape"),
                                       ({"kwta_noise": -1.0}, "kwta_noise must be >= 0")])
def test_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        NetConfig(**bad)


def test_config_dict_round_trip():
    c = NetConfig(n3=10)
    assert NetConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="bogus"):
        NetConfig.from_dict({"bogus": 1})
