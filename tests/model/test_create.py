"""create() follows A1111 1.10.1's creation semantics (spec §1.2, §1.4)."""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import pytest
import torch
from hn_testutil import module_reprs, typed

import lib_hypernet
from lib_hypernet.errors import ActivationError


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
    assert not isinstance(info.value, ActivationError)
    assert "layer_structure" in str(info.value)


def test_unknown_activation_refused() -> None:
    with pytest.raises(ActivationError) as info:
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


# --------------------------------------------------------------------- the library validates like the CLI
@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"sizes": [8.7]}, "whole numbers"),
        ({"sizes": [8.0]}, "whole numbers"),
        ({"sizes": [True]}, "whole numbers"),
        ({"sizes": [-5]}, "positive"),
        ({"sizes": [0]}, "positive"),
        ({"sizes": "768"}, "list of whole numbers"),
        ({"sizes": 768}, "list of whole numbers"),
        ({"sizes": ["768"]}, "whole numbers"),
        ({"layer_structure": [1, True, 1]}, "layer_structure"),
        ({"layer_structure": [1, "2", 1]}, "layer_structure"),
        ({"layer_structure": 5}, "layer_structure"),
        ({"layer_structure": [1, -2, 1]}, "positive"),
        ({"layer_structure": [1, 0, 1]}, "positive"),
        ({"layer_structure": {1: 2}}, "layer_structure"),
        ({"is_layer_norm": "yes"}, "is_layer_norm"),
        ({"use_dropout": 1}, "use_dropout"),
        ({"activate_output": None}, "activate_output"),
        ({"optional_info": 5}, "optional_info"),
        ({"seed": 1.5}, "seed"),
        ({"seed": True}, "seed"),
        ({"sizes": [100000]}, "limit is 4.0 GiB"),
    ],
)
def test_create_refuses_bad_arguments(options: dict, says: str) -> None:
    with pytest.raises(lib_hypernet.HypernetFormatError) as info:
        lib_hypernet.create("x", **{"sizes": [8], **options})
    assert isinstance(info.value, ValueError)
    assert says in str(info.value)


def test_create_refuses_bad_names_and_activations() -> None:
    with pytest.raises(lib_hypernet.HypernetFormatError, match="name must be a string"):
        lib_hypernet.create(None, sizes=[8])  # type: ignore[arg-type]
    with pytest.raises(ActivationError, match="activation_func"):
        lib_hypernet.create("x", sizes=[8], activation_func=3)  # type: ignore[arg-type]


def test_create_size_limit_is_checked_before_allocating() -> None:
    params = lib_hypernet.model.create.estimate_parameters([100000], [1, 2, 1])
    assert params == 2 * (100000 * 200000 + 200000 + 200000 * 100000 + 100000)
    hn = lib_hypernet.create("x", sizes=[8, 24], layer_structure=[1, 1.5, 1], is_layer_norm=True, seed=0)
    assert lib_hypernet.model.create.estimate_parameters([8, 24], [1, 1.5, 1], True) == hn.param_count
    with pytest.raises(lib_hypernet.HypernetFormatError, match="limit"):
        lib_hypernet.create("x", sizes=[64], max_bytes=1000)
    assert lib_hypernet.create("x", sizes=[64], max_bytes=None).widths == [64]


class _NumpyLikeInt:
    """What ``numpy.int64``/``int32`` are to ``create`` (numpy is no core test dependency): a registered
    ``numbers.Integral`` that is no ``int``."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value

    __int__ = __index__

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        return self.value == other

    def __le__(self, other: int) -> bool:
        return self.value <= other

    def __ge__(self, other: int) -> bool:
        return self.value >= other


numbers.Integral.register(_NumpyLikeInt)


def test_numpy_integers_are_sizes() -> None:
    size, seed = _NumpyLikeInt(8), _NumpyLikeInt(1)
    assert not isinstance(size, int)
    assert lib_hypernet.create("x", sizes=[size], seed=seed).widths == [8]
    assert torch.equal(lib_hypernet.create("x", sizes=[size], seed=seed).state_dict()[8][0]["linear.0.weight"],
                       lib_hypernet.create("x", sizes=[8], seed=1).state_dict()[8][0]["linear.0.weight"])


def test_widths_are_truncated_like_a1111_int() -> None:
    """``int(768 * 0.7)`` is 537 (538 if rounded); 1.55 · 320 = 496.00000000000006 → 496 (not 497/ceil)."""
    hn = lib_hypernet.create("t", sizes=[768, 320], layer_structure=[1, 0.7, 1.55, 1], seed=0)
    k = hn.layers[768][0].linear
    assert (k[0].out_features, k[1].out_features) == (537, int(768 * 1.55))
    assert hn.layers[320][0].linear[0].out_features == int(320 * 0.7) == 224
    assert lib_hypernet.model.module.layer_widths(5, [1, 1.9, 1]) == [5, 9, 5]  # 9.5 → 9, not 10


def test_save_refuses_what_load_would_refuse(tmp_path: Path) -> None:
    for path in (tmp_path / "empty.pt", tmp_path / "empty.safetensors"):
        with pytest.raises(lib_hypernet.HypernetFormatError, match="no layers") as info:
            lib_hypernet.Hypernetwork().save(path)
        assert str(path) in str(info.value)
    hn = lib_hypernet.create("x", sizes=[8], seed=0)
    hn.layers[8][0].linear[0].weight[0, 0] = float("nan")
    with pytest.raises(lib_hypernet.HypernetFormatError, match="NaN"):
        hn.save(tmp_path / "nan.pt")
    hn = lib_hypernet.create("x", sizes=[8], seed=0)
    hn.layer_structure = [1, 3, 1]  # no longer matches the weights
    with pytest.raises(lib_hypernet.HypernetFormatError, match="layer_structure"):
        hn.save(tmp_path / "mismatch.safetensors")
    hn = lib_hypernet.create("x", sizes=[8], seed=0)
    hn.step = "many"  # type: ignore[assignment]
    with pytest.raises(lib_hypernet.HypernetFormatError, match="step"):
        hn.save(tmp_path / "step.pt")
    with pytest.raises(lib_hypernet.HypernetFormatError, match="unknown hypernetwork file type"):
        lib_hypernet.create("x", sizes=[8]).save(tmp_path / "x.ckpt")
    assert os.listdir(tmp_path) == []
