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


class Tap(_Strict):
    name: str = Field(description="as given to --taps: a layer, a block instance, an input or an output")
    layer: str = Field(description="the layer (or input) whose output the name means")
    shape: list[int] = Field(description="per-sample shape, channels first")
    channels: int
    rf: ReceptiveField | None = Field(description="its receptive field: the stride is the tap's stride against "
                                      "the input; null without spatial axes")


class Totals(_Strict):
    params: int
    trainable_params: int
    macs: int = Field(description="of an inference pass: layers that feed training outputs only are left out")
    param_bytes: int = Field(description="fp32 bytes of parameters and buffers (the state_dict's tensors)")
    activation_bytes: int = Field(description="fp32 bytes of every layer output, scaled by --batch")


class DiagnosticEntry(_Strict):
    severity: Literal["error", "warning", "info"]
    code: str
    message: str
    file: str
    line: int
    col: int


class Report(_Strict):
    network: str
    inputs: dict[str, list[int]]
    outputs: dict[str, list[int]]
    training_outputs: list[str] = Field([], description="outputs computed in training mode only")
    layers: list[Layer]
    taps: list[Tap] = Field([], description="`check --taps`: the tensors a feature extractor would return")
    totals: Totals
    diagnostics: list[DiagnosticEntry]
