"""The architecture table of a network: per layer type, output shape, parameters and multiply-accumulates.

This answers question 1 of the assignment (``003`` section 1: "give an estimate of the number of
parameters of VGG16") exactly instead of by hand: for VGG16 (Simonyan & Zisserman, *Very deep
convolutional networks for large-scale image recognition*, ICLR 2015) the table has the 13 conv and
3 fully connected layers of the seeds' Tables 1/2 (``000`` Q1), 138,357,544 parameters in total, of
which the fully connected layers hold 89.4 %, and 1000 outputs (question 2).

Everything runs on the ``meta`` device: the network is built without allocating or initialising a
single weight and the forward pass only propagates shapes, so even ViT or VGG19 take well under a
second. Multiply-accumulates come from PyTorch's own ``torch.utils.flop_counter.FlopCounterMode``
(FLOPs / 2: convolutions, matrix products and attention; bias additions, activations, pooling and
normalisation are not counted), which is the convention of the ``_ops`` figures in torchvision's
weights metadata; output shapes come from forward hooks, removed in ``finally``.

``nn.MultiheadAttention`` is the exception: its MACs are counted by hand from the shapes of each call
(projections, QK^T and AV), because which products the counter sees depends on the kernel PyTorch
picks. Its fast path (``_native_multi_head_attention``) hides everything, and its slow path calls
``scaled_dot_product_attention``, which on the CPU runs the fused
``_scaled_dot_product_flash_attention_for_cpu``: the counter of torch 2.14 has no formula for it and
counted 0 for QK^T and AV, while on ``meta`` the same call decomposes into two counted ``bmm``. The same
op met outside nn.MultiheadAttention (timm's attention calls ``scaled_dot_product_attention`` itself)
is counted with the formula of the other fused attention kernels where the counter lacks one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..backbones import BackboneSpec, get_spec
from ..errors import ConfigError

CONV_TYPES = (nn.modules.conv._ConvNd,)
FC_TYPES = (nn.Linear, nn.Bilinear)
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


@dataclass(frozen=True)
class LayerRow:
    """One row of the table: a leaf module, or a module with its own parameters or its own operations.

    ``params`` counts the module's own parameters (weights and bias); ``macs`` the multiply-accumulates
    of one forward pass of one image done by the module itself (not by its sub-modules);
    ``output_shape`` has no batch dimension and is ``None`` for a module the forward pass never calls
    (e.g. Inception's auxiliary head in eval mode).
    """

    module: str
    cut_point: str
    type: str
    kind: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    calls: int

    def as_row(self) -> dict:
        shape = "-" if self.output_shape is None else "x".join(str(d) for d in self.output_shape)
        return {"module": self.module or "(model)", "cut_point": self.cut_point, "type": self.type,
                "kind": self.kind, "output_shape": shape, "params": self.params, "macs": self.macs,
                "calls": self.calls}


@dataclass
class ArchitectureSummary:
    """The whole table plus totals (see :func:`inspect_architecture`)."""

    name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    layers: list[LayerRow]
    total_params: int
    total_macs: int
    extra: dict = field(default_factory=dict)

    def params_of(self, kind: str) -> int:
        """Parameters held by the rows of one kind (``conv``, ``fc``, ``norm``, ``attention``, ``other``)."""
        return sum(row.params for row in self.layers if row.kind == kind)

    @property
    def fc_share(self) -> float:
        """Fraction of all parameters held by the fully connected layers (assignment question 1)."""
        return self.params_of("fc") / self.total_params if self.total_params else 0.0

    def weight_layers(self) -> list[LayerRow]:
        """The convolutional and fully connected rows, in network order (VGG16: 13 + 3)."""
        return [row for row in self.layers if row.kind in ("conv", "fc")]

    def rows(self) -> list[dict]:
        """Table rows (the last one is the total) for :func:`~transferlab.report.write_table`."""
        rows = [row.as_row() for row in self.layers]
        rows.append({"module": "total", "cut_point": "", "type": "", "kind": "",
                     "output_shape": "x".join(str(d) for d in self.output_shape), "params": self.total_params,
                     "macs": self.total_macs, "calls": ""})
        return rows

    def totals(self) -> dict:
        return {
            "backbone": self.name, "input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
            "outputs": int(torch.Size(self.output_shape).numel()), "total_params": self.total_params,
            "conv_params": self.params_of("conv"), "fc_params": self.params_of("fc"),
            "fc_share": self.fc_share, "total_macs": self.total_macs, "n_conv": self._count("conv"),
            "n_fc": self._count("fc"), "n_rows": len(self.layers), **self.extra,
        }

    def _count(self, kind: str) -> int:
        return sum(1 for row in self.layers if row.kind == kind)


def layer_kind(module: nn.Module) -> str:
    if isinstance(module, CONV_TYPES):
        return "conv"
    if isinstance(module, FC_TYPES):
        return "fc"
    if isinstance(module, NORM_TYPES):
        return "norm"
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    return "other"


def summarize_model(model: nn.Module, input_shape: tuple[int, ...], *, name: str = "model",
                    cut_points: Mapping[str, str] | None = None) -> ArchitectureSummary:
    """Build the architecture table of ``model`` for one input of shape ``input_shape`` (no batch dim).

    The forward pass runs on the device of the model's parameters (use the ``meta`` device to make it
    free) in eval mode under ``torch.no_grad``. ``cut_points`` (friendly name -> module path) labels
    the rows whose output a cut point returns.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(1, *input_shape, device=device) if device.type != "meta" else \
        torch.empty(1, *input_shape, device="meta")
    shapes: dict[str, tuple[int, ...]] = {}
    calls: dict[str, int] = {}
    attention: dict[str, int] = {}  # nn.MultiheadAttention path -> MACs counted by hand, all calls
    handles = []
    was_training = model.training
    fastpath = torch.backends.mha.get_fastpath_enabled()
    counter = FlopCounterMode(display=False, custom_mapping=_missing_attention_formulas())
    try:
        # the fused kernel of nn.MultiheadAttention (CPU/GPU eval) would also hide its projections
        torch.backends.mha.set_fastpath_enabled(False)
        for path, module in model.named_modules():
            handles.append(module.register_forward_hook(_shape_hook(path, shapes, calls)))
            if isinstance(module, nn.MultiheadAttention):
                handles.append(module.register_forward_hook(_attention_hook(path, attention), with_kwargs=True))
        model.eval()
        with counter, torch.no_grad():
            output = model(x)
    except (RuntimeError, ValueError, IndexError, AssertionError) as exc:
        raise ConfigError(f"{name} cannot run on an input of shape {tuple(input_shape)} "
                          f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}); "
                          "use the network's own input size (omit --input-size)") from exc
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
        torch.backends.mha.set_fastpath_enabled(fastpath)

    flops = _flops_by_module(model, counter)
    total_flops = counter.get_total_flops()
    for path, macs in attention.items():  # replace whatever the counter saw inside the module
        delta = 2 * macs - flops.get(path, 0)
        for owner in _self_and_ancestors(path):
            flops[owner] = flops.get(owner, 0) + delta
        total_flops += delta
    labels: dict[str, list[str]] = {}
    for friendly, path in (cut_points or {}).items():
        labels.setdefault(path, []).append(friendly)
    rows = []
    for path, module in model.named_modules():
        own_params = sum(p.numel() for p in module.parameters(recurse=False))
        children = [f"{path}.{child}" if path else child for child, _ in module.named_children()]
        own_flops = flops.get(path, 0) - sum(flops.get(child, 0) for child in children)
        if children and not own_params and not own_flops:
            continue
        rows.append(LayerRow(
            module=path, cut_point=", ".join(labels.get(path, [])), type=type(module).__name__,
            kind=layer_kind(module), output_shape=shapes.get(path), params=int(own_params),
            macs=int(own_flops // 2), calls=calls.get(path, 0),
        ))
    total_params = sum(p.numel() for p in model.parameters())
    out_tensor = _first_tensor(output)
    return ArchitectureSummary(
        name=name, input_shape=tuple(input_shape),
        output_shape=tuple(out_tensor.shape[1:]) if out_tensor is not None else (),
        layers=rows, total_params=int(total_params), total_macs=int(total_flops // 2),
    )


def inspect_architecture(backbone: str | BackboneSpec, input_size: int | None = None) -> ArchitectureSummary:
    """The architecture table of a registry backbone, built on the ``meta`` device (instant, no memory).

    Parameters
    ----------
    backbone : registry name (``vgg16``, ``resnet50``, ``timm/...``) or spec.
    input_size : side of the square input image; default the crop size of the backbone's weights
        (224 for VGG16, 299 for Inception v3). Parameters do not depend on it; MACs and shapes do.
    """
    spec = get_spec(backbone) if isinstance(backbone, str) else backbone
    size = spec.preprocessing.crop_size if input_size is None else int(input_size)
    if size < 1:
        raise ConfigError(f"--input-size must be a positive number of pixels; got {size}")
    with torch.device("meta"):
        model = spec.build()
    summary = summarize_model(model, (3, size, size), name=spec.name, cut_points=_module_cut_points(spec, model))
    summary.extra["weights"] = spec.default_weights.source if spec.default_weights else None
    summary.extra["n_categories"] = len(spec.categories)
    return summary


def plot_architecture(summary: ArchitectureSummary, path: Path | str) -> Path:
    """Two bar charts over the layers that hold parameters: parameters and MACs per layer."""
    from ..report import save_figure
    import matplotlib.pyplot as plt

    rows = [row for row in summary.layers if row.params > 0 or row.macs > 0]
    labels = [row.cut_point.split(",")[0] or row.module or "(model)" for row in rows]
    height = max(3.0, min(40.0, 0.22 * len(rows) + 1.5))
    fig, axes = plt.subplots(1, 2, figsize=(12, height), sharey=True)
    colours = {"conv": "tab:blue", "fc": "tab:orange", "norm": "tab:green", "attention": "tab:purple",
               "other": "tab:gray"}
    ys = range(len(rows))
    for ax, key, title in ((axes[0], "params", "parameters"), (axes[1], "macs", "multiply-accumulates")):
        values = [getattr(row, key) for row in rows]
        ax.barh(ys, values, color=[colours[row.kind] for row in rows])
        ax.set_xlabel(f"{title} (total {sum(values):,})")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(list(ys), labels, fontsize=7 if len(rows) < 60 else 4)
    axes[0].invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for k, c in colours.items() if any(r.kind == k for r in rows)]
    axes[1].legend(handles, [k for k in colours if any(r.kind == k for r in rows)], fontsize=8, loc="lower right")
    fig.suptitle(f"{summary.name}: {summary.total_params:,} parameters "
                 f"({summary.fc_share:.1%} in fully connected layers), {summary.total_macs / 1e9:.3g} GMACs "
                 f"at {'x'.join(str(d) for d in summary.input_shape)}")
    return save_figure(fig, path)


def _module_cut_points(spec: BackboneSpec, model: nn.Module) -> dict[str, str]:
    """Cut points whose graph node is a module call (``features.0``), as friendly name -> module path."""
    modules = dict(model.named_modules())
    return {friendly: node for friendly, node in spec.cut_points.items() if node in modules}


def _shape_hook(path: str, shapes: dict, calls: dict):
    def hook(module, inputs, output):
        calls[path] = calls.get(path, 0) + 1
        tensor = _first_tensor(output)
        if path not in shapes and tensor is not None:
            shapes[path] = tuple(tensor.shape[1:])
    return hook


def _attention_hook(path: str, macs: dict):
    def hook(module, args, kwargs, output):
        macs[path] = macs.get(path, 0) + attention_macs(module, *_attention_inputs(args, kwargs))
    return hook


def _attention_inputs(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    return [args[i] if len(args) > i else kwargs[name] for i, name in enumerate(("query", "key", "value"))]


def attention_macs(module: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor,
                   value: torch.Tensor | None = None) -> int:
    """Multiply-accumulates of one call of ``module`` on these inputs, whatever kernel PyTorch runs.

    With ``L`` queries, ``S`` keys, width ``E`` and ``h`` heads of ``E / h``: the in-projections
    ``L*E*E + S*kdim*E + S*vdim*E``, QK^T and AV ``h * L * S' * E/h`` each (``S'`` counts the keys added
    by ``bias_k`` and ``add_zero_attn``), the out-projection ``L*E*E``; times the batch size. Scaling,
    masking and the softmax are not multiply-accumulates, as in the counter.
    """
    batched = query.dim() == 3
    seq = 1 if batched and module.batch_first else 0
    batch = query.shape[1 - seq] if batched else 1
    n_queries, n_keys, width = query.shape[seq], key.shape[seq], module.embed_dim
    projections = (2 * n_queries * width + n_keys * (module.kdim + module.vdim)) * width
    keys = n_keys + (module.bias_k is not None) + bool(module.add_zero_attn)
    return int(batch * (projections + 2 * n_queries * keys * width))


def _self_and_ancestors(path: str) -> list[str]:
    """``a.b.c`` -> ``a.b.c``, ``a.b``, ``a``, ``''`` (the model)."""
    parts = path.split(".") if path else []
    return [".".join(parts[:i]) for i in range(len(parts), -1, -1)]


def _sdpa_flops(query, key, value, *args, **kwargs) -> int:
    """FLOPs of a fused attention op on (batch, heads, L, E) inputs: QK^T and AV, 2 FLOPs per MAC."""
    q, k, v = (tuple(getattr(t, "shape", t)) for t in (query, key, value))
    *lead, n_queries, width = q
    return 2 * int(torch.Size(lead).numel()) * n_queries * k[-2] * (width + v[-1])


_sdpa_flops._get_raw = True  # takes tensors or shapes, whichever the counter passes


def _missing_attention_formulas() -> dict:
    """Formulas for fused attention ops the installed counter does not know (torch 2.14: the CPU flash op)."""
    from torch.utils.flop_counter import flop_registry

    missing = {}
    for name in ("_scaled_dot_product_flash_attention_for_cpu",):
        op = getattr(torch.ops.aten, name, None)
        if op is not None and op not in flop_registry and getattr(op, "default", None) not in flop_registry:
            missing[op] = _sdpa_flops
    return missing


def _first_tensor(value) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, dict):
        return _first_tensor(list(value.values()))
    if hasattr(value, "logits"):  # torchvision InceptionOutputs and similar named tuples
        return _first_tensor(value.logits)
    return None


def _flops_by_module(model: nn.Module, counter: FlopCounterMode) -> dict[str, int]:
    """FLOPs per module path ('' is the model) from the counter's ``Class.path`` keys."""
    prefix = type(model).__name__
    flops: dict[str, int] = {}
    for key, ops in counter.get_flop_counts().items():
        if key == "Global":
            continue
        path = "" if key == prefix else key.removeprefix(prefix + ".")
        flops[path] = int(sum(ops.values()))
    return flops
