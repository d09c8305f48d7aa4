"""Region ops of two-stage detectors (torchvision.ops): features pooled over boxes.

Shapes stay static: a sample's boxes are a `K x 4` tensor (x1, y1, x2, y2 in input pixels), K fixed by the
spec (the proposals a detector keeps per image), so every layer after the pooling has an exact size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from ..diagnostics import Code
from ..layout import fmt_shape
from .base import Attrs, Kept, Op, OpParams, PositiveInts, Shape, ShapeError, Window, per_axis
from .registry import register


class RoiAlignParams(OpParams):
    output_size: PositiveInts
    spatial_scale: Annotated[float, Field(gt=0.0)] = 1.0
    sampling_ratio: Annotated[int, Field(ge=-1)] = -1  # per bin and axis; 0 or -1: ceil(box / output)
    aligned: bool = False


@dataclass(frozen=True)
class RoiAlignAttrs(Attrs[RoiAlignParams]):
    size: tuple[int, int]  # the pooled height and width


@register()
class RoiAlign(Op):
    """torchvision.ops.roi_align (Mask R-CNN's RoIAlign, He et al. 2017): each box's region of the feature map,
    scaled by `spatial_scale` (1/16 for a stride-16 map), split into output_size bins, each the average of
    bilinearly interpolated samples. Reads `[features, boxes]`: C x H x W and K x 4 per sample; gives
    K x C x h x w."""

    kind = "roi_align"
    Params = RoiAlignParams
    positional = ("output_size", "spatial_scale", "sampling_ratio")
    min_inputs = 2
    max_inputs = 2
    spatial_ranks = (2,)
    family = "detection"
    kept_for_backward = Kept.NOTHING  # its backward needs the boxes and the input's shape only
    summary = ("RoIAlign (torchvision.ops.roi_align): `[features, boxes] -> roi_align(7, 0.0625)` pools each of the "
               "K boxes (K x 4: x1, y1, x2, y2 in input pixels) to C x 7 x 7 by bilinear sampling; K x C x 7 x 7.")
    descriptions = {"output_size": "a positive integer or a (height, width) pair",
                    "spatial_scale": "a positive number: feature-map pixels per input pixel (1/16 at stride 16)",
                    "sampling_ratio": "samples per bin along each axis: a positive integer, or -1 for "
                                      "ceil(box size / output size) as torchvision chooses",
                    "aligned": "`true` or `false`: shift boxes by half a pixel (Detectron2's alignment)"}

    def resolve(self, p: RoiAlignParams, inputs: tuple[Shape, ...]) -> RoiAlignAttrs:
        x, boxes = inputs
        if len(x) != 3:
            raise ShapeError(Code.E300, f"`roi_align` pools a C x H x W feature map; got {fmt_shape(x)}",
                             hint="feed the feature map first: `[features, boxes] -> roi_align(7, 0.0625)`")
        if len(boxes) != 2 or boxes[1] != 4:
            raise ShapeError(Code.E300, f"`roi_align` reads boxes as K x 4 (x1, y1, x2, y2) per sample; got "
                             f"{fmt_shape(boxes)}", hint="feed the boxes second: `[features, boxes] -> roi_align(7)`")
        size = per_axis(p.output_size, 2, "output_size", self.name)
        return RoiAlignAttrs(p, inputs, (boxes[0], x[0], *size), (size[0], size[1]))

    def windows(self, a: RoiAlignAttrs) -> list[Window] | None:
        return None  # where a bin reads depends on its box: no fixed receptive field
