"""Stochastic depth (Huang et al., ECCV 2016) switched on in an already built timm backbone.

A regulariser for training only: each residual block's branch is skipped for a random share
of the samples (timm's ``DropPath``), so the network cannot lean on any one block. timm builds
its blocks with a ``drop_path`` slot (None or ``nn.Identity`` when off); this fills them in place, so
weights loaded from a folder keep their parameters and the exported network is unchanged.
"""

from __future__ import annotations

from timm.layers import DropPath
from torch import nn


def residual_blocks(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's modules that own a ``drop_path`` slot, in network order."""
    # A slot is a child module or, where timm left it off, a plain attribute holding None.
    return [m for m in backbone.modules() if "drop_path" in m._modules or "drop_path" in vars(m)]


def set_drop_path(backbone: nn.Module, rate: float) -> list[float]:
    """Give the backbone's residual blocks drop rates rising linearly from 0 to ``rate`` (the
    deepest block, as timm's ResNets do with ``drop_path_rate``). Returns the rates.

    0 switches it off again. Raises ValueError for a rate outside [0, 1) or a backbone without
    such blocks (a rate would otherwise silently do nothing)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"drop path rate must be in [0, 1), not {rate}")
    blocks = residual_blocks(backbone)
    if not blocks:
        raise ValueError(f"{type(backbone).__name__} has no residual blocks with a drop_path slot")
    last = max(len(blocks) - 1, 1)
    rates = [rate * i / last for i in range(len(blocks))]
    for block, block_rate in zip(blocks, rates):
        # Identity, not None, when off: ResNet blocks skip a None slot, but others call it.
        block.drop_path = DropPath(block_rate) if block_rate > 0 else nn.Identity()
    return rates
