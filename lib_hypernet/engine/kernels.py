"""Fast evaluation of one hypernetwork's (k, v) module pair on a device and dtype.

A :class:`CompiledPair` holds the pair's weights stacked as ``[2, in, out]``
(branch k = 0, branch v = 1) so that, when k and v see the same input (always
for the first hypernetwork of a stack), both branches run as one batched matmul
per layer.  The residual and the strength fold into the last matmul
(``baddbmm(x, h, W, alpha=m)``) and the bias into one in-place add, instead of
A1111's separate ``linear → *m → +x`` passes over memory.

Only element-wise, parameter-free activations can run on the stacked tensor;
anything else (softmax, which acts over the batch axis of a 3-D context; PReLU,
whose weight differs per module; …) runs the original modules with A1111's
formula, on the original tensor shape.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F

from ..activations import ELEMENTWISE
from ..module import HypernetworkModule
from ..tensor_modes import ordinary_tensors, version_counter

_INPLACE_ACTIVATIONS = {
    "relu": torch.relu_,
    "leakyrelu": lambda t: F.leaky_relu_(t),
    "elu": lambda t: F.elu_(t),
    "swish": lambda t: F.hardswish(t, inplace=True),
    "hardswish": lambda t: F.hardswish(t, inplace=True),
    "silu": lambda t: F.silu(t, inplace=True),
    "relu6": lambda t: F.relu6(t, inplace=True),
    "hardtanh": lambda t: F.hardtanh_(t),
    "selu": lambda t: F.selu(t, inplace=True),
    "celu": lambda t: F.celu(t, inplace=True),
    "tanh": torch.tanh_,
    "sigmoid": torch.sigmoid_,
}


@dataclass
class _Step:
    weight_t: torch.Tensor  # [branches, in, out]
    bias: torch.Tensor  # [branches, 1, out]
    activation: torch.nn.Module | None
    ln_weight: torch.Tensor | None  # [branches, 1, out], float32 (LayerNorm runs in fp32 under autocast)
    ln_bias: torch.Tensor | None
    ln_eps: float


def _split_steps(module: HypernetworkModule) -> list[list[torch.nn.Module]]:
    """Group the Sequential into [Linear, activation?, LayerNorm?] steps; Dropout is inert in eval."""
    steps: list[list[torch.nn.Module]] = []
    for layer in module.linear:
        if isinstance(layer, torch.nn.Linear):
            steps.append([layer])
        elif not isinstance(layer, torch.nn.Dropout):
            steps[-1].append(layer)
    return steps


def fusable(activation_func: str | None) -> bool:
    """Whether a hypernetwork with this activation can run on flattened, stacked tensors."""
    return activation_func in (None, "linear") or activation_func in ELEMENTWISE


class CompiledPair:
    """One width of one hypernetwork, ready to run on ``device`` in ``dtype``."""

    def __init__(
        self,
        pair: tuple[HypernetworkModule, HypernetworkModule],
        activation_func: str | None,
        device: torch.device,
        dtype: torch.dtype,
        reference_dtype: torch.dtype | None = None,
    ) -> None:
        """``dtype`` is the matmul dtype; ``reference_dtype`` (default ``dtype``) is the dtype of the
        module copies used for non-fusable activations (float32 under autocast, like A1111)."""
        self.modules = pair
        self.device = device
        self.dtype = dtype
        self.fused = fusable(activation_func)
        self._inplace_act = _INPLACE_ACTIVATIONS.get(activation_func or "")
        self.steps: list[_Step] = []
        # Compiled weights are ordinary tensors: a plan made during a Forge generation (inference mode)
        # must still work in a later no_grad or grad-enabled call.
        with ordinary_tensors():
            self._compile(pair, device, dtype, reference_dtype)

    def _compile(
        self,
        pair: tuple[HypernetworkModule, HypernetworkModule],
        device: torch.device,
        dtype: torch.dtype,
        reference_dtype: torch.dtype | None,
    ) -> None:
        if not self.fused:
            # Reference path: the modules themselves, moved once to the device and dtype.
            self.reference = tuple(_copy_module(m, device, reference_dtype or dtype) for m in pair)
            return
        for k_layers, v_layers in zip(_split_steps(pair[0]), _split_steps(pair[1])):
            linear_k, linear_v = cast(torch.nn.Linear, k_layers[0]), cast(torch.nn.Linear, v_layers[0])
            activation = next((x for x in k_layers[1:] if not isinstance(x, torch.nn.LayerNorm)), None)
            ln_k = next((x for x in k_layers if isinstance(x, torch.nn.LayerNorm)), None)
            ln_v = next((x for x in v_layers if isinstance(x, torch.nn.LayerNorm)), None)
            step = _Step(
                weight_t=torch.stack([linear_k.weight.t(), linear_v.weight.t()])
                .to(device=device, dtype=dtype)
                .contiguous(),
                bias=torch.stack([linear_k.bias, linear_v.bias]).to(device=device, dtype=dtype)[:, None, :],
                activation=activation,
                ln_weight=None if ln_k is None or ln_v is None else _stack_param(ln_k.weight, ln_v.weight, device),
                ln_bias=None if ln_k is None or ln_v is None else _stack_param(ln_k.bias, ln_v.bias, device),
                ln_eps=ln_k.eps if ln_k is not None else 0.0,
            )
            self.steps.append(step)

    # ------------------------------------------------------------------ running
    def both(
        self, x: torch.Tensor, strength: float, scratch: dict[Any, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x + m·MLP_k(x), x + m·MLP_v(x))`` for one shared input ``x`` (already on device/dtype).

        ``scratch`` (a dict the caller keeps between calls, outside autocast) holds the
        hidden activations, so repeated calls reuse memory instead of faulting in new pages.
        """
        if not self.fused:
            return self._reference(0, x, strength), self._reference(1, x, strength)
        flat = x.reshape(1, -1, x.shape[-1])
        out = self._run(flat.expand(2, -1, -1), slice(0, 2), strength, scratch)
        return out[0].view(x.shape), out[1].view(x.shape)

    def one(
        self, branch: int, x: torch.Tensor, strength: float, scratch: dict[Any, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``x + m·MLP(x)`` for branch 0 (k) or 1 (v) alone."""
        if not self.fused:
            return self._reference(branch, x, strength)
        flat = x.reshape(1, -1, x.shape[-1])
        return self._run(flat, slice(branch, branch + 1), strength, scratch)[0].view(x.shape)

    def _reference(self, branch: int, x: torch.Tensor, strength: float) -> torch.Tensor:
        return self.reference[branch](x, strength)

    def _run(
        self, x: torch.Tensor, branches: slice, strength: float, scratch: dict[Any, torch.Tensor] | None
    ) -> torch.Tensor:
        """Run the stacked MLP on ``x`` of shape ``[branches, N, d]`` and add the scaled result to it."""
        h = x
        last = len(self.steps) - 1
        for i, step in enumerate(self.steps):
            weight_t, bias = step.weight_t[branches], step.bias[branches]
            # A LayerNorm's float32 parameters promote h to float32; the matmul needs the weights' dtype.
            h = h.to(weight_t.dtype)
            if i == last and step.activation is None and step.ln_weight is None:
                # Fold residual and strength into the matmul, then add the scaled bias in place.
                out = torch.baddbmm(x, h, weight_t, alpha=strength)
                return out.add_(bias, alpha=strength)
            if scratch is not None:
                shape = (h.shape[0], h.shape[1], weight_t.shape[-1])
                key = (i, shape, weight_t.dtype, weight_t.device, torch.is_inference_mode_enabled())
                buffer = scratch.get(key)
                if buffer is None:
                    buffer = scratch[key] = torch.empty(shape, dtype=weight_t.dtype, device=weight_t.device)
                h = buffer.copy_(bias.expand(shape)).baddbmm_(h, weight_t)
            else:
                h = torch.baddbmm(bias, h, weight_t)
            if step.activation is not None:
                h = self._inplace_act(h) if self._inplace_act is not None else step.activation(h)
            if step.ln_weight is not None:
                assert step.ln_bias is not None
                h = F.layer_norm(h, (h.shape[-1],), None, None, step.ln_eps)
                h = torch.addcmul(step.ln_bias[branches], h, step.ln_weight[branches])
        return torch.add(x, h, alpha=strength)


def _stack_param(a: torch.Tensor, b: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.stack([a, b]).to(device=device, dtype=torch.float32)[:, None, :]


def _copy_module(module: HypernetworkModule, device: torch.device, dtype: torch.dtype) -> HypernetworkModule:
    param = next(module.parameters())
    if param.device == device and param.dtype == dtype:
        return module
    return copy.deepcopy(module).to(device=device, dtype=dtype).eval()


def weights_version(module_pair: tuple[HypernetworkModule, HypernetworkModule]) -> tuple[tuple[int | None, int], ...]:
    """Changes whenever a parameter is modified in place or replaced (so compiled copies go stale).

    Inference tensors keep no counter (``None``); they can only be changed in place inside
    inference mode, which a library user does not do to a hypernetwork's weights."""
    return tuple((version_counter(p), p.data_ptr()) for m in module_pair for p in m.parameters())
