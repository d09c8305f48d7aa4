"""The JSON report (`cnndsl check --json`), as pydantic models; docs/report.schema.json is generated
from these (`cnndsl schema`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Fraction = int | str  # an integer, or an exact fraction written "p/q"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReceptiveField(_Strict):
    size: list[int] = Field(description="widest window per spatial axis, in input pixels")
    stride: list[Fraction] = Field(description="effective stride per axis (a fraction after up-sampling)")
    padding: list[Fraction] = Field(description="effective padding per axis: output 0 starts at -padding")


class Window(_Strict):
    """A sliding window's geometry (convolution, pooling), per spatial axis."""

    kernel: list[int]
    stride: list[int]
    dilation: list[int]
    padding: list[list[int]] = Field(description="(before, after) per spatial axis")
    groups: int = Field(1, description="convolution groups (depthwise: the input's channels)")


class Layer(_Strict):
    name: str
    op: str
    inputs: list[str]
    shape: list[int] = Field(description="per-sample output shape, channels first")
    params: int
    macs: int = Field(description="multiply-accumulates in the chosen convention, scaled by --batch")
    rf: ReceptiveField | None = Field(description="null when the output has no spatial axes")
    line: int
    training_only: bool = Field(False, description="feeds `training output`s only: its parameters count, its "
                                "MACs and activations are not in the inference totals")
    layers: int = Field(1, description="`--depth`: the layers a block instance's row stands for (1: a layer)")
    window: Window | None = Field(None, description="kernel, stride, dilation, padding and groups of a "
                                  "convolution or pooling layer; null for other layers")


class OpSummary(_Strict):
    op: str
    layers: int
    params: int
    macs: int = Field(description="of an inference pass, in the report's convention and batch")


class Tap(_Strict):
    name: str = Field(description="as given to --taps: a layer, a block instance, an input or an output")
    layer: str = Field(description="the layer (or input) whose output the name means")
    shape: list[int] = Field(description="per-sample shape, channels first")
    channels: int
    rf: ReceptiveField | None = Field(description="its receptive field: the stride is the tap's stride against "
                                      "the input; null without spatial axes")


class Totals(_Strict):
    """The network's totals; each is null when the spec has errors (a sum over the layers that checked would
    look like the network's and is not)."""

    params: int | None
    trainable_params: int | None
    macs: int | None = Field(description="of an inference pass: layers that feed training outputs only are left out")
    param_bytes: int | None = Field(description="fp32 bytes of parameters and buffers (the state_dict's tensors)")
    activation_bytes: int | None = Field(description="fp32 bytes of every layer output, scaled by --batch")
    peak_activation_bytes: int | None = Field(0, description="fp32 bytes live at once during an inference pass in "
                                              "the spec's order (tensors freed after their last reader), scaled by "
                                              "--batch")
    bflops: float | None = Field(0.0, description="2 x macs / 1e9: Darknet's BFLOPs of these MACs (Darknet's own "
                                 "figure with --convention darknet)")


class DiagnosticEntry(_Strict):
    severity: Literal["error", "warning", "info"]
    code: str
    message: str
    file: str
    line: int
    col: int
    end_line: int = Field(0, description="where the located text ends (0: unknown)")
    end_col: int = Field(0, description="the column after the located text (0: unknown)")
    hint: str | None = Field(None, description="how to fix it, when there is a clear fix")
    notes: list[str] = Field([], description="context: the block calls that led there, outermost first")
    source_line: str = Field("", description="the line of the spec the diagnostic points at, as written "
                                             "(empty when it has no location)")


class TrainingMemory(_Strict):
    """`check --train OPTIMIZER`: what one training step holds at its peak (the backward's start), fp32."""

    optimizer: Literal["sgd", "adam"] = Field(description="sgd: with momentum (one buffer per parameter); adam: two")
    weights_bytes: int = Field(description="parameters and buffers")
    gradient_bytes: int = Field(description="one gradient per trainable parameter")
    optimizer_bytes: int = Field(description="the optimizer's state")
    kept_activation_bytes: int = Field(description="what autograd keeps for the backward pass (inputs included), "
                                       "scaled by --batch; within 5% of PyTorch's for the bundled networks")
    total_bytes: int


class Report(_Strict):
    network: str
    convention: str = Field("torchvision", description="how the MACs were counted (--convention)")
    batch: int = Field(1, description="the batch MACs and activation memory are scaled by (--batch)")
    inputs: dict[str, list[int]]
    outputs: dict[str, list[int]]
    training_outputs: list[str] = Field([], description="outputs computed in training mode only")
    layers: list[Layer]
    taps: list[Tap] = Field([], description="`check --taps`: the tensors a feature extractor would return")
    by_op: list[OpSummary] = Field([], description="MACs and parameters by op kind, largest MACs first")
    training: TrainingMemory | None = Field(None, description="`--train`: the memory of one training step")
    totals: Totals
    diagnostics: list[DiagnosticEntry]
