"""ToMe (Forge 2 ``backend/misc/tomesd.py:147-163``): an ``attn1_patch`` that merges the query tokens
(``return m(q), k, v`` — K and V inputs untouched) and an ``attn1_output_patch`` that unmerges them.

The merge here averages neighbouring token pairs (the real one matches tokens by similarity); what an
extension can observe is the same: Q changes shape, the K/V inputs passed on are the patch's inputs.
"""
from __future__ import annotations

import torch


def _pairs(x: torch.Tensor, ratio: float) -> tuple:
    tokens = x.shape[1]
    r = int(tokens * ratio) // 2 * 2
    if r < 2:
        return (lambda y: y), (lambda y: y)

    def merge(y: torch.Tensor) -> torch.Tensor:
        head, tail = y[:, :r], y[:, r:]
        return torch.cat([head.reshape(y.shape[0], r // 2, 2, -1).mean(2), tail], dim=1)

    def unmerge(y: torch.Tensor) -> torch.Tensor:
        head, tail = y[:, : r // 2], y[:, r // 2:]
        return torch.cat([head.repeat_interleave(2, dim=1), tail], dim=1)

    return merge, unmerge


class TomePatcher:
    def __init__(self) -> None:
        self.u = None

    def patch(self, model, ratio: float):
        def tomesd_m(q, k, v, extra_options):
            m, self.u = _pairs(q, ratio)
            return m(q), k, v

        def tomesd_u(n, extra_options):
            return self.u(n)

        m = model.clone()
        m.set_model_attn1_patch(tomesd_m)
        m.set_model_attn1_output_patch(tomesd_u)
        return m
