"""The multi-task network: one timm backbone, one small head per task."""

from __future__ import annotations

import warnings

import timm
import torch
import torch.nn.functional as F
from torch import nn

from .config import RUNTIMES, ModelConfig


class UnknownBackboneError(ValueError):
    pass


class RuntimeUnavailableError(ValueError):
    """The runtime asked for cannot run this network here (not installed, or not for this
    device or precision)."""


class FaceMTLNet(nn.Module):
    """Backbone features -> emotion, age, gender, ethnicity logits and a unit identity embedding.

    Input: Nx3xSxS float tensor normalised with the config's mean/std (RGB).
    ``forward`` returns raw outputs by head name (``embedding`` already L2-normalised).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not timm.is_model(config.backbone):
            raise UnknownBackboneError(
                f"unknown timm backbone {config.backbone!r} (see timm.list_models())"
            )
        self.config = config
        self.backbone = timm.create_model(config.backbone, pretrained=False, num_classes=0)
        # Some backbones (MobileNetV4, MobileNetV3) widen pooled features in a head conv.
        features = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.dropout = nn.Dropout(config.dropout)
        self.heads = nn.ModuleDict(
            {name: nn.Linear(features, width) for name, width in config.head_sizes.items()}
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(x)
        dropped = self.dropout(features)
        outputs = {name: head(dropped) for name, head in self.heads.items() if name != "embedding"}
        # The identity embedding sees undropped features: dropout noise hurts metric learning.
        outputs["embedding"] = F.normalize(self.heads["embedding"](features).float(), dim=1)
        return outputs

    def head_parameters(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 CPU copies of head ``name``'s weight (outputs x features) and bias (outputs)."""
        head = self.heads[name]
        return head.weight.detach().float().cpu().clone(), head.bias.detach().float().cpu().clone()

    def set_head(self, name: str, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Replace head ``name``'s weight and bias, in place (cast to the head's dtype and device)."""
        head = self.heads[name]
        if weight.shape != head.weight.shape or bias.shape != head.bias.shape:
            raise ValueError(f"head {name!r} is {tuple(head.weight.shape)}, not {tuple(weight.shape)}")
        with torch.no_grad():
            head.weight.copy_(weight.to(head.weight))
            head.bias.copy_(bias.to(head.bias))


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bfloat16 matrix units, where bf16 convolutions beat float32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


class _BF16Autocast(nn.Module):
    """Runs the network under CPU bfloat16 autocast and hands back float32 outputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs = self.model(x)
        return {name: value.float() for name, value in outputs.items()}


def effective_precision(config: ModelConfig, device: str) -> str:
    """The precision ``inference_runner`` computes in: "bf16" only where the config asks for it
    and the CPU has native bf16 (emulated bf16 ran 18x slower than fp32 on an AVX2 CPU),
    otherwise "fp32"."""
    wanted = config.inference_precision == "bf16"
    return "bf16" if wanted and device == "cpu" and cpu_has_native_bf16() else "fp32"


def precision_override(runtime: str, inference_precision: str | None) -> str | None:
    """The inference precision to put over the weights' config: ``inference_precision`` when
    given; "fp32" when ``runtime`` is "onnx" (ONNX Runtime computes float32 here, so asking for
    it outranks weights whose config prefers bf16); else None (as the config says)."""
    if inference_precision is None and runtime == "onnx":
        return "fp32"
    return inference_precision


class _FusedFullBatches:
    """Runs batches of exactly ``batch`` images through ``fused`` (a graph that oneDNN Graph
    compiled for that shape) and any other batch through ``plain`` (the traced graph).

    Why only one shape: the fused graph compiles again for every new batch shape, and ran
    small batches slower than the plain graph even once compiled (2 images: 129 against 350
    img/s), while full batches, most of the work in batch analysis, ran 10% faster (bf16,
    batch 64, 2-core AMD EPYC with AVX512-BF16: 1,490-1,500 against 1,340-1,360 img/s)."""

    runtime = "torch"

    def __init__(self, fused, plain, batch: int) -> None:
        self.fused, self.plain, self.batch = fused, plain, batch

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return (self.fused if x.shape[0] == self.batch else self.plain)(x)


def _fused_graph(traced, plain, batch: int, side: int):
    """``traced`` (the runner's traced graph, not frozen; freezing works on a copy) frozen and
    compiled by oneDNN Graph for batches of ``batch`` images, or None where that fails or
    disagrees with ``plain``. The fusion flag is process-wide, so it is on only while the graph
    is frozen and run for the first times (its profiling runs, which compile it); the compiled
    graph keeps its fused kernels after the flag is restored."""
    example = torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(0))
    example = example.contiguous(memory_format=torch.channels_last)
    previous = torch.jit.onednn_fusion_enabled()
    torch.jit.enable_onednn_fusion(True)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fused = torch.jit.freeze(traced.eval())
            for _ in range(3):
                got = fused(example)
            expected = plain(example)
    except Exception:  # an optimisation only: never a reason to fail
        return None
    finally:
        torch.jit.enable_onednn_fusion(previous)
    # Both compute in bf16: their outputs differ by rounding only (at most 0.05 seen).
    agree = all(torch.allclose(got[name], expected[name], atol=0.25) for name in expected)
    return fused if agree else None


def inference_runner(
    model: FaceMTLNet, config: ModelConfig, device: str, runtime: str = "auto", full_batch: int | None = None
):
    """What analysis and evaluation run, called like the module. On the CPU in float32: the
    network in ONNX Runtime (``runtime`` "auto" where it is installed, or "onnx"), else a
    traced, frozen copy (BatchNorm folded into convolutions, oneDNN kernels), which also runs
    bf16 autocast where ``config.inference_precision`` asks for it and the CPU has native
    bf16; there, batches of ``full_batch`` images (the caller's usual full batch) run a graph
    fused by oneDNN Graph. On other devices, or if tracing fails, the module itself."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    bf16 = device == "cpu" and effective_precision(config, device) == "bf16"
    if runtime == "onnx" and (device != "cpu" or bf16):
        where = f"device {device}" if device != "cpu" else "bf16 inference (torch autocast)"
        raise RuntimeUnavailableError(f"runtime 'onnx' runs float32 on the CPU only, not {where}; use runtime 'auto'")
    if device != "cpu":
        return model
    if not bf16 and runtime != "torch":
        from .onnx_runner import OnnxRunner, onnx_runtime_available

        if onnx_runtime_available():
            try:
                return OnnxRunner(model, config.input_size)
            except Exception as error:
                if runtime == "onnx":
                    raise
                # "auto": an optimisation only, never a reason to fail; torch runs it below.
                warnings.warn(f"ONNX Runtime could not run the network ({type(error).__name__}: {error}); "
                              "using torch", RuntimeWarning, stacklevel=2)
        elif runtime == "onnx":
            raise RuntimeUnavailableError("runtime 'onnx' needs the onnxruntime and onnx packages: pip install onnxruntime onnx")
    runner = _BF16Autocast(model) if bf16 else model
    side = config.input_size
    example = torch.zeros(2, 3, side, side).contiguous(memory_format=torch.channels_last)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(runner.eval(), example, strict=False)
            plain = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    except Exception:  # an optimisation only: never a reason to fail
        return runner
    fused = _fused_graph(traced, plain, full_batch, side) if bf16 and full_batch else None
    return _FusedFullBatches(fused, plain, full_batch) if fused is not None else plain


def runner_runtime(runner) -> str:
    """"onnx" or "torch": what an ``inference_runner`` computes with."""
    return getattr(runner, "runtime", "torch")


def expected_years(age_distribution: torch.Tensor) -> torch.Tensor:
    """Expected value in years of distributions over ages 0..max_age (N x max_age+1 -> N)."""
    years = torch.arange(age_distribution.shape[1], dtype=torch.float32, device=age_distribution.device)
    return (age_distribution * years).sum(dim=1)


def predict(model: FaceMTLNet, x: torch.Tensor, flip: bool = False) -> dict[str, torch.Tensor]:
    """Probabilities (emotion, gender, ethnicity), age in years and embeddings, as float32.

    ``flip``: also run the mirror image (in the same batch) and average the two views:
    faces are near-symmetric, so this costs one more forward pass and makes every head
    less sensitive to which way a face turns.
    """
    n = x.shape[0]
    outputs = model(torch.cat([x, torch.flip(x, dims=[3])]) if flip else x)
    probabilities = softmax_of_views(outputs, ("emotion", "age", "gender", "ethnicity"), n)
    embedding = outputs["embedding"].float()
    if flip:
        embedding = F.normalize(embedding[:n] + embedding[n:], dim=1)
    return {**probabilities, "age": expected_years(probabilities["age"]), "embedding": embedding}


def softmax_of_views(outputs: dict[str, torch.Tensor], heads, n: int) -> dict[str, torch.Tensor]:
    """Each of ``heads``' softmax as float32 for ``n`` images. Outputs of 2n rows hold the
    images and then their mirror images (``predict``'s flip): each face's two views are averaged."""
    flipped = outputs[heads[0]].shape[0] == 2 * n
    probabilities = {head: outputs[head].float().softmax(dim=1) for head in heads}
    return {head: (p[:n] + p[n:]) / 2 if flipped else p for head, p in probabilities.items()}
