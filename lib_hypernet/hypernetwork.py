"""The :class:`Hypernetwork` object: layers per attention width plus the A1111 metadata."""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import numbers
import os
import reprlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import torch

from . import formats
from .activations import UnusableActivationError
from .errors import ActivationError, HypernetError, HypernetFormatError
from .fields import METADATA_FIELDS
from .formats.pickle_scan import check_nesting
from .module import MAX_WIDTH, HypernetworkModule, fix_old_state_dict, layer_widths, parse_dropout_structure
from .tensor_modes import ordinary, ordinary_tensors

log = logging.getLogger(__name__)

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlevel = 3

WEIGHT_INITIALIZATIONS = ("Normal", "XavierUniform", "XavierNormal", "KaimingUniform", "KaimingNormal")

_KNOWN_STR_KEYS = frozenset(METADATA_FIELDS) | {"source_sha256"}


class Hypernetwork:
    """A loaded or freshly created hypernetwork.

    ``layers[width]`` is ``(module_k, module_v)``; metadata attributes are named
    like the file keys.  Modules are always in eval mode with
    ``requires_grad=False`` (dropout never runs at inference).
    """

    def __init__(
        self,
        layers: Mapping[int, tuple[HypernetworkModule, HypernetworkModule]] | None = None,
        *,
        name: str | None = None,
        step: int = 0,
        layer_structure: Sequence[float] = (1, 2, 1),
        activation_func: str | None = None,
        is_layer_norm: bool = False,
        weight_initialization: str = "Normal",
        sd_checkpoint: str | None = None,
        sd_checkpoint_name: str | None = None,
        activate_output: bool = False,
        use_dropout: bool = False,
        dropout_structure: Sequence[float] | None = None,
        last_layer_dropout: bool = False,
        optional_info: str | None = None,
        path: str | None = None,
        file_format: str | None = None,
    ) -> None:
        self.layers: dict[int, tuple[HypernetworkModule, HypernetworkModule]] = dict(layers or {})
        self.name = name
        self.step = step
        self.layer_structure = list(layer_structure)
        self.activation_func = activation_func
        self.is_layer_norm = is_layer_norm
        self.weight_initialization = weight_initialization
        self.sd_checkpoint = sd_checkpoint
        self.sd_checkpoint_name = sd_checkpoint_name
        self.activate_output = activate_output
        self.use_dropout = use_dropout
        self.dropout_structure = (
            list(dropout_structure)
            if dropout_structure is not None
            else parse_dropout_structure(self.layer_structure, use_dropout, last_layer_dropout)
        )
        self.last_layer_dropout = last_layer_dropout
        self.optional_info = optional_info
        self.path = path
        self.file_format = file_format
        self.ignored_keys: list[str] = []
        self.source_sha256: str | None = None
        self.eval()

    # ----------------------------------------------------------------- properties
    @property
    def widths(self) -> list[int]:
        return sorted(self.layers)

    @property
    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        for module_k, module_v in self.layers.values():
            yield from module_k.parameters()
            yield from module_v.parameters()

    def modules(self) -> Iterator[HypernetworkModule]:
        for pair in self.layers.values():
            yield from pair

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def metadata(self) -> dict[str, Any]:
        """The A1111 metadata fields with their current values."""
        return {field: getattr(self, field) for field in METADATA_FIELDS}

    # ----------------------------------------------------------------- state
    def eval(self) -> Hypernetwork:
        for module in self.modules():
            module.eval()
            module.requires_grad_(False)
        return self

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Hypernetwork:
        with ordinary_tensors():  # moved weights stay ordinary tensors, even during a Forge generation
            for module in self.modules():
                module.to(device=device, dtype=dtype)
        return self

    def state_dict(self) -> dict[Any, Any]:
        """The dict A1111 writes into a ``.pt`` (same keys, same order, same value types)."""
        raw: dict[Any, Any] = {}
        for width in self.widths:
            module_k, module_v = self.layers[width]
            raw[width] = (_cpu_state(module_k), _cpu_state(module_v))
        for field in METADATA_FIELDS:
            raw[field] = getattr(self, field)
        ds = self.dropout_structure
        raw["last_layer_dropout"] = (ds[-2] != 0) if ds is not None and len(ds) >= 2 else self.last_layer_dropout
        raw["optional_info"] = self.optional_info or None
        return raw

    def save(self, path: str | os.PathLike[str], *, source_sha256: str | None = None) -> None:
        """Write atomically; ``.pt`` (A1111-loadable on any torch) or ``.safetensors`` by suffix.

        The same object always gives the same bytes.  What :func:`load` would refuse (no layers,
        weights that do not fit the structure, NaN weights, metadata of the wrong type) is refused
        here with a :class:`~lib_hypernet.HypernetFormatError` naming ``path``, and nothing is written.
        """
        formats.format_of(path)
        raw = self.state_dict()
        try:
            from_state_dict(raw, path=os.fspath(path))  # exactly the checks load() makes
        except HypernetFormatError as exc:
            raise type(exc)(f"not saved, because the file could not be loaded back: {exc.reason}", path) from exc
        formats.write_raw(path, raw, source_sha256=source_sha256 or self.source_sha256)

    def __repr__(self) -> str:
        return (
            f"Hypernetwork(name={self.name!r}, widths={self.widths}, layer_structure={self.layer_structure}, "
            f"activation_func={self.activation_func!r}, is_layer_norm={self.is_layer_norm})"
        )


def _cpu_state(module: torch.nn.Module) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, ordinary(v.detach().to("cpu"))) for k, v in module.state_dict().items())


# --------------------------------------------------------------------- loading
def load(path: str | os.PathLike[str]) -> Hypernetwork:
    """Load a ``.pt`` (A1111 format, safely) or ``.safetensors`` hypernetwork.

    Never reads the ``.optim`` side file (see :func:`lib_hypernet.load_optimizer_state`).
    Raises a :class:`~lib_hypernet.errors.HypernetError` subclass naming the file.
    """
    path = os.fspath(path)
    with ordinary_tensors():  # Forge loads during generation, under inference_mode
        raw = formats.read_raw(path)
        hn = from_state_dict(raw, path=path)
    hn.file_format = formats.format_of(path)
    return hn


def from_state_dict(raw: Mapping[Any, Any], *, path: str | None = None, name: str | None = None) -> Hypernetwork:
    """Build a :class:`Hypernetwork` from an A1111-layout dict, applying A1111's load defaults.

    The weights become ordinary tensors whatever mode the caller (or the dict's tensors) were in."""
    with ordinary_tensors():
        return _from_state_dict(raw, path, name)


def _from_state_dict(raw: Mapping[Any, Any], path: str | None, name: str | None) -> Hypernetwork:
    stem = os.path.splitext(os.path.basename(path))[0] if path else None
    if not isinstance(raw, Mapping):
        raise HypernetFormatError(f"expected a dict of layers and metadata, got a {type(raw).__name__}", path)
    check_nesting(dict(raw), path)
    fields = _read_fields(raw, path)

    dropout_structure = fields["dropout_structure"]
    use_dropout = bool(dropout_structure is not None and any(dropout_structure)) or fields["use_dropout"]
    if dropout_structure is None:
        dropout_structure = parse_dropout_structure(fields["layer_structure"], use_dropout, fields["last_layer_dropout"])

    widths = [width for width in raw if type(width) is int]
    if len(widths) > MAX_WIDTHS:
        raise HypernetFormatError(
            f"{len(widths)} layer widths; a hypernetwork has a handful (at most {MAX_WIDTHS} are accepted)", path
        )
    layers = {}
    for width in widths:
        layers[width] = _build_pair(width, raw[width], fields, dropout_structure, path)
    if not layers:
        raise HypernetFormatError(
            "contains no layers: a hypernetwork needs at least one integer width key (e.g. 768) holding "
            "(k, v) state dicts",
            path,
        )

    hn = Hypernetwork(
        layers,
        name=fields["name"] or name or stem,
        step=fields["step"],
        layer_structure=fields["layer_structure"],
        activation_func=fields["activation_func"],
        is_layer_norm=fields["is_layer_norm"],
        weight_initialization=fields["weight_initialization"],
        sd_checkpoint=fields["sd_checkpoint"],
        sd_checkpoint_name=fields["sd_checkpoint_name"],
        activate_output=fields["activate_output"],
        use_dropout=use_dropout,
        dropout_structure=dropout_structure,
        last_layer_dropout=fields["last_layer_dropout"],
        optional_info=fields["optional_info"],
        path=path,
    )
    hn.ignored_keys = sorted(str(k) for k in raw if type(k) is not int and k not in _KNOWN_STR_KEYS)
    hn.source_sha256 = raw.get("source_sha256") if isinstance(raw.get("source_sha256"), str) else None
    return hn


# Metadata numbers beyond these cannot be real (and would overflow float conversions).
_MAX_METADATA_INT = 1 << 63
MAX_LAYER_STRUCTURE_LEN = 100
MAX_WIDTHS = 64  # SD1 uses 4 attention widths, SDXL 3
# The weight dtypes a hypernetwork may store (A1111 trains float32; halves and doubles convert exactly).
WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _is_number(value: Any) -> bool:
    """A real number that converts to a finite float without overflow (ints within +-2**63)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    if isinstance(value, numbers.Integral):
        try:
            return abs(int(value)) <= _MAX_METADATA_INT
        except (TypeError, ValueError, OverflowError):
            return False
    try:
        return math.isfinite(float(value)) and abs(float(value)) <= _MAX_METADATA_INT
    except (TypeError, ValueError, OverflowError):
        return False


def _short(value: Any) -> str:
    """A bounded repr for error messages (a file's values may be huge)."""
    return _REPR.repr(value)


def _read_fields(raw: Mapping[Any, Any], path: str | None) -> dict[str, Any]:
    def get(key: str, default: Any, kind: str) -> Any:
        value = raw.get(key, default)
        ok = {
            "bool": lambda v: isinstance(v, (bool, int)) or v is None,
            "int": lambda v: _is_number(v) and float(v).is_integer(),
            "structure": lambda v: isinstance(v, (list, tuple)) and 0 < len(v) <= MAX_LAYER_STRUCTURE_LEN
            and all(_is_number(x) for x in v),
            "structure?": lambda v: v is None or (isinstance(v, (list, tuple)) and len(v) <= MAX_LAYER_STRUCTURE_LEN
                                                  and all(_is_number(x) for x in v)),
            "str?": lambda v: v is None or isinstance(v, str),
        }[kind](value)
        if not ok:
            raise HypernetFormatError(f"metadata {key!r} has an invalid value {_short(value)}", path)
        return value

    fields = {
        "name": get("name", None, "str?"),
        "step": int(get("step", 0, "int")),
        "layer_structure": [_plain_number(x) for x in get("layer_structure", [1, 2, 1], "structure")],
        "activation_func": get("activation_func", None, "str?"),
        "is_layer_norm": bool(get("is_layer_norm", False, "bool")),
        "weight_initialization": get("weight_initialization", "Normal", "str?"),
        "sd_checkpoint": get("sd_checkpoint", None, "str?"),
        "sd_checkpoint_name": get("sd_checkpoint_name", None, "str?"),
        "activate_output": bool(get("activate_output", True, "bool")),
        "use_dropout": bool(get("use_dropout", False, "bool")),
        "dropout_structure": get("dropout_structure", None, "structure?"),
        "last_layer_dropout": bool(get("last_layer_dropout", False, "bool")),
        "optional_info": get("optional_info", None, "str?"),
    }
    if fields["dropout_structure"] is not None:
        fields["dropout_structure"] = [_plain_number(x) for x in fields["dropout_structure"]]
    return fields


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every element is finite.  Exact, and fast for the common case: the sum is finite unless
    some element is not (or the sum overflows, which the full element-wise check then settles)."""
    if not tensor.is_floating_point() and not tensor.is_complex():
        return True
    if tensor.dtype not in WEIGHT_DTYPES:  # e.g. float8: no sum kernel; compare in float32
        tensor = tensor.to(torch.float32)
    return math.isfinite(float(tensor.sum())) or bool(torch.isfinite(tensor).all())


def _plain_number(x: Any) -> int | float:
    """Numpy scalars and the like become Python ints/floats (ints stay ints, as A1111 writes them)."""
    return int(x) if isinstance(x, numbers.Integral) else float(x)


def _build_pair(
    width: int,
    value: Any,
    fields: Mapping[str, Any],
    dropout_structure: Sequence[float],
    path: str | None,
) -> tuple[HypernetworkModule, HypernetworkModule]:
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(isinstance(sd, Mapping) for sd in value):
        raise HypernetFormatError(
            f"width {width}: expected a pair (k, v) of state dicts, got {type(value).__name__}"
            + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""),
            path,
        )
    return (
        _build_module(width, "k", value[0], fields, dropout_structure, path),
        _build_module(width, "v", value[1], fields, dropout_structure, path),
    )


def _build_module(
    width: int,
    branch: str,
    state: Mapping[str, Any],
    fields: Mapping[str, Any],
    dropout_structure: Sequence[float],
    path: str | None,
) -> HypernetworkModule:
    where = f"width {width} ({branch})"
    if width < 1 or width > MAX_WIDTH:
        raise HypernetFormatError(f"{where}: width must be between 1 and {MAX_WIDTH}", path)
    state = fix_old_state_dict(state)
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise HypernetFormatError(f"{where}: {_short(key)} is a {type(tensor).__name__}, not a tensor", path)
        if tensor.dtype not in WEIGHT_DTYPES:
            raise HypernetFormatError(
                f"{where}: {_short(key)} has dtype {tensor.dtype}; hypernetwork weights must be float16, bfloat16, "
                "float32 or float64",
                path,
            )
        if tensor.device.type == "meta" or tensor.is_sparse:
            raise HypernetFormatError(f"{where}: {_short(key)} is not a dense tensor with data", path)
    try:
        with torch.device("meta"):
            module = HypernetworkModule(
                width,
                fields["layer_structure"],
                fields["activation_func"],
                fields["is_layer_norm"],
                fields["activate_output"],
                dropout_structure,
            )
    except KeyError as exc:
        raise ActivationError(
            f"unknown activation function {_short(fields['activation_func'])} (A1111 accepts linear, relu, leakyrelu, elu, "
            "swish, tanh, sigmoid and torch.nn activation class names in lower case)",
            path,
        ) from exc
    except TypeError as exc:
        raise ActivationError(
            f"activation function {_short(fields['activation_func'])} cannot be built without arguments ({exc})", path
        ) from exc
    except ValueError as exc:
        kind = ActivationError if isinstance(exc, UnusableActivationError) else HypernetFormatError
        raise kind(str(exc), path) from exc

    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise HypernetFormatError(
            f"{where}: state dict does not match layer_structure={fields['layer_structure']}, "
            f"activation_func={_short(fields['activation_func'])}, is_layer_norm={fields['is_layer_norm']}, "
            f"activate_output={fields['activate_output']}"
            + (f"; missing {_short(missing)}" if missing else "")
            + (f"; unexpected {_short(unexpected)}" if unexpected else ""),
            path,
        )
    for key, param in expected.items():
        if tuple(state[key].shape) != tuple(param.shape):
            raise HypernetFormatError(
                f"{where}: {key!r} has shape {tuple(state[key].shape)}, expected {tuple(param.shape)} "
                f"for width {width} and layer_structure {fields['layer_structure']}",
                path,
            )
        if not all_finite(state[key]):
            raise HypernetFormatError(
                f"{where}: {key!r} contains NaN or infinite values; the file is broken (a diverged training run?)",
                path,
            )
    module.load_state_dict(
        {k: v.to(torch.float32) if v.dtype != torch.float32 else ordinary(v) for k, v in state.items()},
        strict=True,
        assign=True,
    )
    module.eval()
    module.requires_grad_(False)
    return module


# --------------------------------------------------------------------- creating
MAX_CREATE_BYTES = 4 * 1024**3
"""The largest hypernetwork :func:`create` builds by default (as a float32 file); real ones are far smaller."""


def create(
    name: str,
    sizes: Iterable[int] = (768, 320, 640, 1280),
    layer_structure: Sequence[float] | str = (1, 2, 1),
    activation_func: str | None = "linear",
    weight_initialization: str = "Normal",
    is_layer_norm: bool = False,
    use_dropout: bool = False,
    dropout_structure: Sequence[float] | str | None = None,
    activate_output: bool = False,
    optional_info: str | None = None,
    seed: int | None = None,
    *,
    max_bytes: int | None = MAX_CREATE_BYTES,
) -> Hypernetwork:
    """A new hypernetwork with A1111's creation options and initialisation.

    ``layer_structure``/``dropout_structure`` accept lists or A1111's comma
    strings (``"1, 2, 1"``).  As in A1111, ``dropout_structure`` is used only
    with ``use_dropout`` and is all zeros otherwise.  ``seed`` makes the
    initial weights (and so the saved file) reproducible.  Nothing is written to disk.

    Every argument is checked before anything is allocated: a bad one raises
    :class:`~lib_hypernet.HypernetFormatError` (a ``ValueError``; :class:`~lib_hypernet.ActivationError`
    for the activation), as does a network whose float32 weights would exceed ``max_bytes``
    (``None``: no limit).
    """
    if not isinstance(name, str):
        raise HypernetFormatError(f"name must be a string, got {name!r}")
    widths = _parse_sizes(sizes)
    ls = _parse_structure(layer_structure, "layer_structure")
    if len(ls) < 2 or ls[0] != 1 or ls[-1] != 1:
        raise HypernetFormatError(f"layer_structure must start and end with 1 (e.g. 1, 2, 1), got {_listed(ls)}")
    if any(not x > 0 for x in ls):
        raise HypernetFormatError(f"layer_structure entries must be positive, got {_listed(ls)}")
    for flag, value in (("is_layer_norm", is_layer_norm), ("use_dropout", use_dropout),
                        ("activate_output", activate_output)):
        if not isinstance(value, bool):
            raise HypernetFormatError(f"{flag} must be True or False, got {value!r}")
    if use_dropout and dropout_structure not in (None, ""):
        dropout: list[float] = _parse_structure(dropout_structure, "dropout_structure")
        if len(dropout) != len(ls):
            raise HypernetFormatError(f"dropout_structure {dropout} must have as many entries as layer_structure {ls}")
        if any(not 0 <= p < 1 for p in dropout):
            raise HypernetFormatError(f"dropout probabilities must be in [0, 1), got {dropout}")
    else:
        dropout = [0] * len(ls)
    if weight_initialization not in WEIGHT_INITIALIZATIONS:
        raise HypernetFormatError(
            f"unknown weight_initialization {weight_initialization!r}; use one of {', '.join(WEIGHT_INITIALIZATIONS)}"
        )
    if activation_func is not None and not isinstance(activation_func, str):
        raise ActivationError(f"activation_func must be a name such as 'relu' or None, got {activation_func!r}")
    if optional_info is not None and not isinstance(optional_info, str):
        raise HypernetFormatError(f"optional_info must be a string or None, got {optional_info!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise HypernetFormatError(f"seed must be a whole number or None, got {seed!r}")
    for width in widths:
        if min(layer_widths(width, ls)) < 1:
            raise HypernetFormatError(f"layer_structure {_listed(ls)} gives a layer of width 0 for size {width}")
    params = estimate_parameters(widths, ls, is_layer_norm)
    if max_bytes is not None and params * 4 > max_bytes:
        raise HypernetFormatError(
            f"sizes {', '.join(map(str, widths))} with layer_structure {_listed(ls)} would make "
            f"{params:,} parameters, a {_gib(params * 4)} file (the limit is {_gib(max_bytes)}); "
            "Stable Diffusion's sizes are 320 to 2048 (SD1: 768, 320, 640, 1280)"
        )
    layers = {}
    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    with rng, ordinary_tensors():
        if seed is not None:
            torch.manual_seed(int(seed))
        for width in widths:
            layers[width] = _new_pair(width, ls, activation_func, weight_initialization, is_layer_norm,
                                      activate_output, dropout)
    return Hypernetwork(
        layers,
        name=name,
        layer_structure=ls,
        activation_func=activation_func,
        is_layer_norm=is_layer_norm,
        weight_initialization=weight_initialization,
        activate_output=activate_output,
        use_dropout=use_dropout,
        dropout_structure=dropout,
        last_layer_dropout=len(dropout) >= 2 and dropout[-2] != 0,
        optional_info=optional_info,
    )


def estimate_parameters(sizes: Iterable[int], layer_structure: Sequence[float], is_layer_norm: bool = False) -> int:
    """The parameter count of the k and v modules of all ``sizes`` (without building them).

    Counts Linear weights and biases and LayerNorm weights and biases; a parametric activation
    (PReLU: one weight) adds a negligible few.
    """
    total = 0
    for size in sizes:
        dims = layer_widths(size, layer_structure)
        for d_in, d_out in itertools.pairwise(dims):
            total += d_in * d_out + d_out + (2 * d_out if is_layer_norm else 0)
    return 2 * total


def _parse_sizes(sizes: Iterable[int]) -> list[int]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Iterable):
        raise HypernetFormatError(f"sizes must be a list of whole numbers such as [768, 320, 640, 1280], got {sizes!r}")
    values = list(sizes)
    for size in values:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise HypernetFormatError(f"sizes must be whole numbers such as 768, got {size!r} in {values!r}")
        if not 1 <= size <= MAX_WIDTH:
            raise HypernetFormatError(f"sizes must be positive widths such as 768, got {size!r} in {values!r}")
    widths = sorted({int(s) for s in values})
    if not widths:
        raise HypernetFormatError("a hypernetwork needs at least one module size (e.g. 768)")
    return widths


def _listed(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{x:g}" for x in values) + "]"


def _gib(n: int) -> str:
    return f"{n / 1024**3:,.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:,.1f} MiB"


def _new_pair(
    width: int,
    layer_structure: list[float],
    activation_func: str | None,
    weight_initialization: str,
    is_layer_norm: bool,
    activate_output: bool,
    dropout: list[float],
) -> tuple[HypernetworkModule, HypernetworkModule]:
    modules = []
    for _ in "kv":
        try:
            with torch.device("meta"):  # no default initialisation: A1111's own follows
                module = HypernetworkModule(width, layer_structure, activation_func, is_layer_norm, activate_output, dropout)
        except KeyError as exc:
            raise ActivationError(f"unknown activation function {activation_func!r}") from exc
        except (TypeError, UnusableActivationError) as exc:
            raise ActivationError(f"cannot use activation function {activation_func!r}: {exc}") from exc
        except ValueError as exc:
            raise HypernetFormatError(str(exc)) from exc
        module.to_empty(device="cpu")
        for layer in module.linear:
            reset = getattr(layer, "reset_parameters", None)
            if type(layer) not in (torch.nn.Linear, torch.nn.LayerNorm) and callable(reset):
                reset()  # e.g. PReLU's weight (0.25)
        _initialise(module, weight_initialization, activation_func)
        module.requires_grad_(False)
        modules.append(module)
    return modules[0], modules[1]


def _parse_structure(value: Sequence[float] | str, what: str) -> list[float]:
    """A1111's comma string (``"1, 2, 1"``) or a sequence of real numbers, as floats."""
    try:
        if isinstance(value, str):
            items = [float(x.strip()) for x in value.split(",")]
        else:
            if isinstance(value, (bytes, Mapping)) or not isinstance(value, Iterable):
                raise TypeError
            listed = list(value)
            if any(isinstance(x, bool) or not isinstance(x, numbers.Real) for x in listed):
                raise TypeError
            items = [float(x) for x in listed]
    except (ValueError, TypeError) as exc:
        raise HypernetFormatError(f"{what} must be numbers separated by commas, got {value!r}") from exc
    if any(not math.isfinite(x) for x in items):
        raise HypernetFormatError(f"{what} must be finite numbers, got {value!r}")
    return items


def _initialise(module: HypernetworkModule, scheme: str, activation_func: str | None) -> None:
    """A1111's initialisation: every LayerNorm and 'Normal' Linear get N(0, 0.01) weights and zero bias."""
    nonlinearity: Literal["leaky_relu", "relu"] = "leaky_relu" if activation_func == "leakyrelu" else "relu"
    init = torch.nn.init
    with torch.no_grad():
        for layer in module.linear:
            if not (type(layer) is torch.nn.Linear or type(layer) is torch.nn.LayerNorm):
                continue
            weight, bias = layer.weight, layer.bias
            assert isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)
            if scheme == "Normal" or type(layer) is torch.nn.LayerNorm:
                init.normal_(weight, mean=0.0, std=0.01)
            elif scheme == "XavierUniform":
                init.xavier_uniform_(weight)
            elif scheme == "XavierNormal":
                init.xavier_normal_(weight)
            elif scheme == "KaimingUniform":
                init.kaiming_uniform_(weight, nonlinearity=nonlinearity)
            else:
                init.kaiming_normal_(weight, nonlinearity=nonlinearity)
            init.zeros_(bias)


__all__ = ["WEIGHT_INITIALIZATIONS", "HypernetError", "Hypernetwork", "create", "from_state_dict", "load"]
