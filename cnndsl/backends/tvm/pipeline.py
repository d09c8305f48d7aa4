"""From a lowered network to kernels: the weights folded in, the layout chosen for the target, the
tuned schedules applied, and the weights stored the way those kernels read them.

1. **Bind the weights as constants** (`BindParams`). Everything computed from weights alone is now
   computed once, here, not at every call: batch norm's per-channel scale is multiplied into the
   convolution before it (`fold_scales_into_convs`), its shift becomes the convolution's bias, and
   `FoldConstant` evaluates the rest (a linear layer's transpose, layout transposes of weights).
2. **Choose the data layout** (`choose_layout`): NHWC for tuned CPU builds, NCHW otherwise (numbers in
   `choose_layout`'s docstring). `ConvertLayout` carries NHWC through the element-wise ops, pools and
   adds after each 2-D convolution and transposes back only where an op needs NCHW (a flatten). In
   NHWC, 3x3 stride-1 convolutions may be computed by Winograd (`winograd.py`, `choose_winograd`).
3. **Kernels** (`fuse`): legalise to TIR and fuse, exactly as MetaSchedule's task extraction sees the
   module, with the weight buffers marked layout-free (`AttachAttrLayoutFreeBuffers`): a tuned schedule
   may then ask for the weights in any layout it likes (MetaSchedule's `RewriteLayout` postproc packs
   them into vector-width tiles), and that packing is split out of the kernel
   (`SplitLayoutRewritePreproc`) and folded at compile time like any other weight computation.
4. **Weights out of the code** (`constants_to_params`): the folded, packed constants become parameters
   of `main` again and are stored in `params.npz`, named after the kernel that reads them. The library
   holds only code (VGG-16's 528 MB of weights never pass through the linker) and loading runs no
   transform: the artifact's weights are already in the layout its kernels read.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms

from .lower import Lowered
from .winograd import to_winograd

Layout = Literal["nchw", "nhwc"]
LAYOUT_CHOICES = ("auto", "nchw", "nhwc")
WINOGRAD_CHOICES = ("auto", "on", "off")

# Transposed convolutions stay NCHW: ConvertLayout would otherwise carry NHWC into them, and TVM 0.27
# cannot legalise an NHWC conv2d_transpose.
_NHWC = {"relax.nn.conv2d": ["NHWC", "HWIO"], "relax.nn.conv2d_transpose": ["NCHW", "IOHW"]}
_CONVS = ("relax.nn.conv1d", "relax.nn.conv2d", "relax.nn.conv3d")


@dataclass
class Program:
    """A compiled network: the VM executable and the parameters `main` takes after the inputs."""

    executable: relax.VMExecutable
    param_names: list[str]
    param_values: list[np.ndarray]
    layout: Layout
    cuda_graph: bool = False


def choose_layout(requested: str, target: tvm.target.Target, tuned: bool) -> Layout:
    """`auto`: NHWC for tuned CPU builds, NCHW for the rest. On this project's 2-core AVX-512 machine,
    one ResNet-18 3x3 convolution (64 channels, 56x56, 128 trials each) tuned to 2.25 ms in NHWC/HWIO
    against 4.30 ms in NCHW/OIHW (MetaSchedule vectorises the innermost axis, which NHWC makes the
    channels); TVM's untuned CPU schedules go the other way (whole ResNet-18: 1.9 s NCHW, 3.9 s NHWC).
    GPU builds keep NCHW, DLight's layout (no GPU has measured the alternative for this project yet)."""
    if requested not in LAYOUT_CHOICES:
        raise ValueError(f"layout must be one of {', '.join(LAYOUT_CHOICES)}; got {requested!r}")
    if requested != "auto":
        return requested  # type: ignore[return-value]
    return "nhwc" if tuned and target.kind.name == "llvm" else "nchw"


def choose_winograd(requested: str, layout: Layout, target: tvm.target.Target, tuned: bool) -> bool:
    """`auto`: Winograd for the eligible convolutions of tuned CPU builds in NHWC (the layout its
    MetaSchedule rules are written for); its untuned default schedules are naive loops."""
    if requested not in WINOGRAD_CHOICES:
        raise ValueError(f"winograd must be one of {', '.join(WINOGRAD_CHOICES)}; got {requested!r}")
    if requested != "auto":
        return requested == "on"
    return tuned and layout == "nhwc" and target.kind.name == "llvm"


def prepared(lowered: Lowered, target: tvm.target.Target, layout: str = "auto", winograd: str = "auto",
             tuned: bool = False) -> tuple[tvm.IRModule, Layout]:
    """The requested layout and algorithm resolved for `target` (a network without 2-D convolutions has
    no layout to choose: NCHW), and the module prepared in them; the one place compile, tune and bench
    make that choice, so the kernels tuned are the kernels compiled."""
    chosen = choose_layout(layout, target, tuned) if has_conv2d(lowered.module) else "nchw"
    return prepare(lowered, chosen, choose_winograd(winograd, chosen, target, tuned)), chosen


def bind_weights(lowered: Lowered) -> tvm.IRModule:
    """`main` with its weight parameters replaced by their values, as constants."""
    main = lowered.module["main"]
    weights = main.params[int(main.attrs["num_input"]):]
    return relax.transform.BindParams("main", dict(zip(weights, lowered.param_values, strict=True)))(
        lowered.module)


def prepare(lowered: Lowered, layout: Layout, winograd: bool = False) -> tvm.IRModule:
    """The lowered module with its weights bound and folded, in `layout`, eligible 3x3 convolutions
    computed by Winograd where asked (NHWC only): what tuning and compiling both start from (so the
    tasks tuned are the kernels compiled)."""
    module = fold_scales_into_convs(bind_weights(lowered))
    module = relax.transform.FoldConstant()(module)
    if layout == "nhwc" and has_conv2d(module):
        module = _convert_to_nhwc(module)
        if winograd:
            module, _ = to_winograd(module)
    return relax.transform.DeadCodeElimination()(module)


def _convert_to_nhwc(module: tvm.IRModule) -> tvm.IRModule:
    try:
        converted = relax.transform.ConvertLayout(_NHWC)(module)
    except (RuntimeError, IndexError, ValueError) as exc:  # how TVM 0.27 reports a failed pass
        # an op whose layout inference TVM gets wrong (0.27 crashed on relax.stack) costs speed, not the build
        warnings.warn(f"keeping NCHW convolutions: TVM's ConvertLayout failed on this network "
                      f"({str(exc).splitlines()[-1]}); the build is correct but may be slower", stacklevel=3)
        return module
    return relax.transform.FoldConstant()(converted)


def fuse(module: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """Dispatch, legalise and fuse into TIR kernels, weights marked layout-free: the module MetaSchedule
    extracts its tasks from and `compile_program` looks them up in (the same passes, so the keys match)."""
    from tvm.relax import pipeline

    try:
        dispatch = pipeline.library_dispatch_passes(target)
    except (ValueError, AttributeError):
        dispatch = []
    passes = [*dispatch, relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
              relax.transform.FoldConstant(), relax.transform.FuseOps(), relax.transform.FuseTIR(),
              relax.transform.CanonicalizeBindings(), relax.transform.AttachAttrLayoutFreeBuffers()]
    with target:
        return tvm.transform.Sequential(passes)(module)


def compile_program(module: tvm.IRModule, target: tvm.target.Target, layout: Layout,
                    database: ms.database.Database | None = None, cuda_graph: bool = False) -> Program:
    """A prepared module -> kernels and their parameters. Tuned kernels come from `database`; the rest
    keep TVM's default schedules (DLight's on GPUs, so an untuned CUDA build runs). With `cuda_graph`,
    Relax's RewriteCUDAGraph captures the network's static kernel launches in a CUDA graph on the first
    call and replays it after (one launch instead of one per kernel: at batch 1 a network is launch-bound)."""
    from tvm.relax import pipeline

    database = database or ms.database.MemoryDatabase()
    config = {"relax.backend.use_cuda_graph": True} if cuda_graph else {}
    with target, database, tvm.transform.PassContext(opt_level=3, config=config):
        kernels = fuse(module, target)
        kernels = relax.transform.MetaScheduleApplyDatabase()(kernels)
        # the weight packing a tuned schedule asked for becomes its own kernel, run once here on constants
        kernels = relax.transform.SplitLayoutRewritePreproc()(kernels)
        kernels = relax.transform.FoldConstant()(kernels)
        kernels = relax.transform.CanonicalizeBindings()(kernels)  # kernels read the folded constants directly
        kernels = relax.transform.DeadCodeElimination()(kernels)
        if pipeline.BackendDispatcher.is_gpu_target(target):
            kernels = default_gpu_schedules()(kernels)
        kernels, names, values = constants_to_params(kernels)
        executable = relax.build(kernels, target=target, relax_pipeline=tvm.transform.Sequential(_lowering(target)))
    return Program(executable, names, values, layout, cuda_graph)


def default_gpu_schedules() -> tvm.transform.Pass:
    """DLight's schedules for the kernels no record covers on GPUs: what an untuned CUDA build runs (and
    what a tuning round measures as each kernel's baseline, rounds.default_schedule)."""
    from tvm.s_tir import dlight as dl

    return dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(),
                                   dl.gpu.Fallback())


def _lowering(target: tvm.target.Target) -> list[tvm.transform.Pass]:
    """Relax -> VM code: the target's own passes, or (TVM 0.27 registers none for plain CPUs) the list
    MetaSchedule's `compile_relax` falls back to. On CUDA, RewriteCUDAGraph after the memory plan (where
    it finds the static allocations it captures): TVM 0.27's generic finalisation lacks it (its CUDA
    backend's has it), and it does nothing unless relax.backend.use_cuda_graph is set (`cuda_graph`)."""
    from tvm.relax import pipeline

    t = relax.transform
    try:
        passes = [*pipeline.dataflow_lower_passes(target), *pipeline.finalize_passes(target)]
    except (ValueError, AttributeError):
        passes = [t.RewriteDataflowReshape(), t.ToNonDataflow(), t.RemovePurityChecking(), t.CallTIRRewrite(),
                  t.StaticPlanBlockMemory(), t.LowerAllocTensor(), t.KillAfterLastUse(), t.LowerRuntimeBuiltin(),
                  t.ComputePrimValue(), t.VMShapeLower(), t.AttachGlobalSymbol()]
    names = [p.info.name for p in passes]
    if target.kind.name == "cuda" and "RewriteCUDAGraph" not in names:
        passes.insert(names.index("StaticPlanBlockMemory") + 1, t.RewriteCUDAGraph())
    return passes


def constants_to_params(module: tvm.IRModule) -> tuple[tvm.IRModule, list[str], list[np.ndarray]]:
    """Every tensor constant of `main` (the folded weights) becomes a parameter after the inputs, named
    after the first kernel that reads it (`fused_conv2d_add_relu3.arg1`); scalars stay in the code."""
    main = module["main"]
    names = _constant_names(main)
    lifted = _ConstantsToParams(module, names).lift(main)
    values = [c.value.numpy() for c in lifted.constants]
    return (tvm.IRModule({**{gv: module[gv] for gv in module.get_global_vars() if gv.name_hint != "main"},
                          "main": lifted.function}), lifted.names, values)


def _constant_names(main: relax.Function) -> dict[tvm.ir.GenericConst, str]:
    """Constant -> `kernel.argN` of its first reader (directly or through a binding); `const` where none
    is a kernel."""
    bound = {b.var: b.value for block in main.body.blocks for b in block.bindings}
    names: dict[tvm.ir.GenericConst, str] = {}

    def visit(expr: relax.Expr) -> None:
        if _op_name(expr) == "relax.call_tir":
            callee = expr.args[0].name_hint
            for i, arg in enumerate(expr.args[1].fields):
                arg = bound.get(arg, arg) if isinstance(arg, relax.Var) else arg
                if isinstance(arg, tvm.ir.GenericConst):
                    names.setdefault(arg, f"{callee}.arg{i}")

    relax.analysis.post_order_visit(main, visit)
    return names


@relax.expr_functor.mutator
class _ConstantsToParams(relax.PyExprMutator):  # type: ignore[misc]
    def __init__(self, module: tvm.IRModule, names: dict[tvm.ir.GenericConst, str]) -> None:
        super().__init__(module)
        self.names_by_constant = names
        self.vars: dict[tvm.ir.GenericConst, relax.Var] = {}
        self.constants: list[tvm.ir.GenericConst] = []
        self.names: list[str] = []
        self.function: relax.Function | None = None

    def visit_generic_const_(self, op: tvm.ir.GenericConst) -> relax.Expr:
        if len(op.value.shape) == 0:
            return op
        if op not in self.vars:
            name = self.names_by_constant.get(op, "const")
            taken = sum(1 for n in self.names if n == name or n.startswith(name + "#"))
            name = f"{name}#{taken + 1}" if taken else name
            self.vars[op] = relax.Var(name, op.ty)
            self.constants.append(op)
            self.names.append(name)
        return self.vars[op]

    def lift(self, main: relax.Function) -> _ConstantsToParams:
        body = self.visit_expr(main.body)
        self.function = relax.Function([*main.params, *self.vars.values()], body, main.ret_ty,
                                       main.is_pure, main.attrs, main.span)
        return self


def fold_scales_into_convs(module: tvm.IRModule) -> tvm.IRModule:
    """`conv(x, W) * s` with constant `W` and a constant per-output-channel `s` (inference batch norm)
    becomes `conv(x, W * s)`, and `(conv(x, W) + b) * s` becomes `conv(x, W * s) + b * s`, where the
    convolution's result has no other reader. The shift that follows then is the convolution's bias."""
    main = module["main"]
    values = {b.var: b.value for block in main.body.blocks for b in block.bindings}
    readers: dict[relax.Var, int] = {}

    def count(expr: relax.Expr) -> None:
        if isinstance(expr, relax.Var):
            readers[expr] = readers.get(expr, 0) + 1

    for value in values.values():
        for arg in (value.args if isinstance(value, relax.Call) else
                    value.fields if isinstance(value, relax.Tuple) else [value]):
            count(arg)
    count(main.body.body)
    folded = _FoldScales(module, values, readers).visit_expr(main)
    return relax.transform.DeadCodeElimination()(tvm.IRModule({"main": folded}))


def _op_name(expr: relax.Expr) -> str:
    return expr.op.name if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) else ""


def _per_channel(expr: relax.Expr, channels: int, rank: int) -> np.ndarray | None:
    """The constant's values if it is a (1, C, 1, ...) per-channel vector for `channels`."""
    if not isinstance(expr, tvm.ir.GenericConst):
        return None
    shape = tuple(int(d) for d in expr.value.shape)
    if shape != (1, channels, *(1,) * rank):
        return None
    return expr.value.numpy().reshape(channels)


@relax.expr_functor.mutator
class _FoldScales(relax.PyExprMutator):  # type: ignore[misc]
    def __init__(self, module: tvm.IRModule, values: dict[relax.Var, relax.Expr],
                 readers: dict[relax.Var, int]) -> None:
        super().__init__(module)
        self.values, self.readers = values, readers

    def _sole(self, expr: relax.Expr, op: str | tuple[str, ...]) -> relax.Call | None:
        """The call bound to `expr` if it is `op` and `expr` has no other reader."""
        if not isinstance(expr, relax.Var) or self.readers.get(expr) != 1:
            return None
        value = self.values.get(expr)
        ops = (op,) if isinstance(op, str) else op
        return value if _op_name(value) in ops else None  # type: ignore[return-value]

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        if _op_name(call) == "relax.multiply":
            folded = self._fold(call)
            if folded is not None:
                return folded
        return super().visit_call_(call)

    def _fold(self, multiply: relax.Call) -> relax.Expr | None:
        source, scale_expr = multiply.args
        bias_add = self._sole(source, "relax.add")
        conv = self._sole(bias_add.args[0] if bias_add is not None else source, _CONVS)
        if conv is None or not isinstance(conv.args[1], tvm.ir.GenericConst) or \
                not str(conv.attrs.kernel_layout).startswith("O"):
            return None
        weight = conv.args[1].value.numpy()
        rank = weight.ndim - 2
        scale = _per_channel(scale_expr, weight.shape[0], rank)
        bias = _per_channel(bias_add.args[1], weight.shape[0], rank) if bias_add is not None else None
        if scale is None or (bias_add is not None and bias is None):
            return None
        scaled = (weight * scale.reshape(-1, *(1,) * (rank + 1))).astype(weight.dtype)
        new_conv = relax.Call(conv.op, [self.visit_expr(conv.args[0]), relax.const(scaled)], conv.attrs)
        if bias is None:
            return new_conv
        new_bias = (bias * scale).astype(weight.dtype).reshape(1, -1, *(1,) * rank)
        return relax.op.add(self.builder_.emit(new_conv), relax.const(new_bias))


def has_conv2d(module: tvm.IRModule) -> bool:
    """Whether a layout choice applies at all: only 2-D convolutions change layout."""
    found: list[relax.Expr] = []
    relax.analysis.post_order_visit(module["main"],
                                    lambda e: found.append(e) if _op_name(e) == "relax.nn.conv2d" else None)
    return bool(found)
