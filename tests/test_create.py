"""create() follows A1111 1.10.1's creation semantics (spec §1.2, §1.4)."""

from __future__ import annotations

import pytest
import torch
from hn_testutil import module_reprs, typed

import lib_hypernet


@pytest.fixture(scope="module")
def a1111_default() -> lib_hypernet.Hypernetwork:
    return lib_hypernet.create("x", sizes=[768, 320], layer_structure="1, 2, 1", activation_func="relu", seed=0)


def test_a1111_create_defaults(a1111_default: lib_hypernet.Hypernetwork) -> None:
    hn = a1111_default
    assert typed(hn.layer_structure) == typed([1.0, 2.0, 1.0])
    assert hn.widths == [320, 768]
    assert hn.name == "x"
    assert hn.step == 0
    assert hn.activation_func == "relu"
    assert hn.weight_initialization == "Normal"
    assert hn.is_layer_norm is False
    assert hn.activate_output is False
    assert hn.use_dropout is False
    assert typed(hn.dropout_structure) == typed([0, 0, 0])
    assert hn.last_layer_dropout is False
    assert hn.optional_info is None
    assert hn.sd_checkpoint is None and hn.sd_checkpoint_name is None
    assert hn.path is None


def test_a1111_create_shapes(a1111_default: lib_hypernet.Hypernetwork) -> None:
    for width in (768, 320):
        for module in a1111_default.layers[width]:
            sd = module.state_dict()
            assert list(sd) == ["linear.0.weight", "linear.0.bias", "linear.2.weight", "linear.2.bias"]
            assert sd["linear.0.weight"].shape == (2 * width, width)
            assert sd["linear.0.bias"].shape == (2 * width,)
            assert sd["linear.2.weight"].shape == (width, 2 * width)
            assert sd["linear.2.bias"].shape == (width,)
            assert module_reprs(module) == [f"Linear({width}, {2 * width})", "ReLU", f"Linear({2 * width}, {width})"]
            assert not module.training
            assert all(not p.requires_grad and p.dtype == torch.float32 for p in module.parameters())
    assert a1111_default.layers[768][0].linear[0].weight.shape == (1536, 768)


def test_normal_init(a1111_default: lib_hypernet.Hypernetwork) -> None:
    weights = torch.cat([m.linear[i].weight.flatten() for m in a1111_default.modules() for i in (0, 2)])
    assert abs(weights.std().item() - 0.01) < 0.0005
    assert abs(weights.mean().item()) < 0.0005
    for module in a1111_default.modules():
        for i in (0, 2):
            assert torch.count_nonzero(module.linear[i].bias) == 0


def test_layer_norm_init_is_a1111_quirk() -> None:
    """A1111 initialises LayerNorm weights ~N(0, 0.01) (not 1) and zero bias, whatever the init scheme."""
    for scheme in ("Normal", "XavierUniform"):
        hn = lib_hypernet.create("ln", sizes=[320], activation_func="relu", is_layer_norm=True,
                                 weight_initialization=scheme, seed=1)
        norms = [layer for m in hn.modules() for layer in m.linear if isinstance(layer, torch.nn.LayerNorm)]
        assert len(norms) == 4  # two per module (after every Linear, the last one included)
        weights = torch.cat([n.weight for n in norms])
        assert abs(weights.std().item() - 0.01) < 0.001
        assert abs(weights.mean().item()) < 0.001
        assert all(torch.count_nonzero(n.bias) == 0 for n in norms)


@pytest.mark.parametrize("scheme", ["XavierUniform", "XavierNormal", "KaimingUniform", "KaimingNormal"])
@pytest.mark.parametrize("activation", ["relu", "leakyrelu"])
def test_other_inits(scheme: str, activation: str) -> None:
    hn = lib_hypernet.create("x", sizes=[64], activation_func=activation, weight_initialization=scheme, seed=3)
    assert hn.weight_initialization == scheme
    first = hn.layers[64][0].linear[0]
    # these schemes give weights far larger than Normal's 0.01 for a 64 -> 128 layer
    assert first.weight.std().item() > 0.05
    assert torch.count_nonzero(first.bias) == 0
    assert bool(torch.isfinite(first.weight).all())


def test_unknown_init_refused() -> None:
    with pytest.raises(lib_hypernet.HypernetFormatError) as info:
        lib_hypernet.create("x", sizes=[8], weight_initialization="Orthogonal")
    assert "Orthogonal" in str(info.value)


def test_dropout_structure_parsed_with_use_dropout() -> None:
    hn = lib_hypernet.create("d", sizes=[8], layer_structure="1, 2, 2, 1", activation_func="relu",
                             use_dropout=True, dropout_structure="0, 0.1, 0.2, 0")
    assert typed(hn.dropout_structure) == typed([0.0, 0.1, 0.2, 0.0])
    assert hn.use_dropout is True
    assert hn.last_layer_dropout is True  # dropout_structure[-2] != 0, as A1111 writes it
    assert module_reprs(hn.layers[8][0]) == [
        "Linear(8, 16)", "ReLU", "Dropout(p=0.1)", "Linear(16, 16)", "ReLU", "Dropout(p=0.2)", "Linear(16, 8)",
    ]
    assert list(hn.layers[8][0].state_dict()) == [
        "linear.0.weight", "linear.0.bias", "linear.3.weight", "linear.3.bias", "linear.6.weight", "linear.6.bias",
    ]
    assert hn.state_dict()["last_layer_dropout"] is True


def test_dropout_structure_ignored_without_use_dropout() -> None:
    hn = lib_hypernet.create("d", sizes=[8], layer_structure="1, 2, 2, 1", activation_func="relu",
                             use_dropout=False, dropout_structure="0, 0.1, 0.2, 0")
    assert typed(hn.dropout_structure) == typed([0, 0, 0, 0])
    assert not any(isinstance(layer, torch.nn.Dropout) for m in hn.modules() for layer in m.linear)


def test_use_dropout_without_structure_gives_zeros() -> None:
    hn = lib_hypernet.create("d", sizes=[8], layer_structure=[1, 2, 1], use_dropout=True)
    assert typed(hn.dropout_structure) == typed([0, 0, 0])


@pytest.mark.parametrize("dropout", ["0, 0.3, 0", "0, 0.1, 0.1, 0.1, 0", [0, 0.3]])
def test_mismatched_dropout_length_refused(dropout: object) -> None:
    with pytest.raises(lib_hypernet.HypernetFormatError) as info:
        lib_hypernet.create("d", sizes=[8], layer_structure="1, 2, 2, 1", use_dropout=True, dropout_structure=dropout)
    assert "dropout_structure" in str(info.value)


@pytest.mark.parametrize("dropout", ["0, 1, 0", "0, 1.5, 0", "0, -0.1, 0", "0, x, 0"])
def test_bad_dropout_values_refused(dropout: str) -> None:
    with pytest.raises(lib_hypernet.HypernetFormatError):
        lib_hypernet.create("d", sizes=[8], layer_structure="1, 2, 1", use_dropout=True, dropout_structure=dropout)


@pytest.mark.parametrize("structure", ["2, 1", "1", "1, 2, 3", "abc", "1, nan, 1", [1, float("inf"), 1], "1, 0.01, 1"])
def test_bad_layer_structure_refused(structure: object) -> None:
    with pytest.raises(lib_hypernet.HypernetFormatError) as info:
        lib_hypernet.create("x", sizes=[8], layer_structure=structure)
    assert not isinstance(info.value, lib_hypernet.ActivationError)
    assert "layer_structure" in str(info.value)


def test_unknown_activation_refused() -> None:
    with pytest.raises(lib_hypernet.ActivationError) as info:
        lib_hypernet.create("x", sizes=[8], activation_func="swishy")
    assert "swishy" in str(info.value)


def test_no_sizes_refused() -> None:
    with pytest.raises(lib_hypernet.HypernetFormatError):
        lib_hypernet.create("x", sizes=[])


# spec §1.4 "Verified key layouts"
KEY_LAYOUTS = [
    ({"layer_structure": [1, 2, 1], "activation_func": "linear"}, ["Linear", "Linear"], ["0", "1"]),
    ({"layer_structure": [1, 2, 1], "activation_func": None}, ["Linear", "Linear"], ["0", "1"]),
    ({"layer_structure": [1, 2, 1], "activation_func": "relu"}, ["Linear", "ReLU", "Linear"], ["0", "2"]),
    (
        {"layer_structure": [1, 2, 1], "activation_func": "relu", "activate_output": True},
        ["Linear", "ReLU", "Linear", "ReLU"], ["0", "2"],
    ),
    (
        {"layer_structure": [1, 2, 1], "activation_func": "relu", "is_layer_norm": True},
        ["Linear", "ReLU", "LayerNorm", "Linear", "LayerNorm"], ["0", "2", "3", "4"],
    ),
    (
        {"layer_structure": [1, 2, 2, 1], "activation_func": "swish", "use_dropout": True,
         "dropout_structure": [0, 0.3, 0.3, 0]},
        ["Linear", "Hardswish", "Dropout", "Linear", "Hardswish", "Dropout", "Linear"], ["0", "3", "6"],
    ),
    ({"layer_structure": [1, 1.5, 1], "activation_func": "prelu"}, ["Linear", "PReLU", "Linear"], ["0", "1", "2"]),
]


@pytest.mark.parametrize(("options", "layers", "indices"), KEY_LAYOUTS)
def test_key_layouts(options: dict, layers: list[str], indices: list[str]) -> None:
    hn = lib_hypernet.create("x", sizes=[768], seed=0, **options)
    module = hn.layers[768][0]
    assert [type(layer).__name__ for layer in module.linear] == layers
    keys = list(module.state_dict())
    assert sorted({k.split(".")[1] for k in keys}, key=int) == indices
    if "PReLU" in layers:
        assert "linear.1.weight" in keys and "linear.1.bias" not in keys
        assert module.linear[0].weight.shape == (1152, 768)  # int(768 * 1.5)


def test_fresh_network_is_nearly_identity() -> None:
    """Normal init (std 0.01, zero bias) makes a new network a small perturbation, as in A1111."""
    hn = lib_hypernet.create("x", sizes=[16], activation_func="relu", seed=0)
    ctx = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(0))
    k, _ = lib_hypernet.apply_hypernetworks(ctx, [(hn, 1.0)])
    assert (k - ctx).abs().max().item() < 0.01
    assert not torch.equal(k, ctx)
