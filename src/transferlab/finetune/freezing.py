"""Which parameters train: ``all-but-head``, ``none`` or ``up-to LAYER``; discriminative learning rates.

Report 001 (section 1.6.4) freezes every VGG16 layer except the new last one (``requires_grad =
False``) and compares it with training everything. ``up-to LAYER`` freezes the network from its input
up to and including ``LAYER`` (a cut-point name of the registry such as ``layer3`` or ``pool4``, or a
dotted module path) and trains the rest. Discriminative learning rates (Howard & Ruder 2018, ULMFiT)
give the pretrained part a smaller rate than the new head, as parameter groups of one optimiser.

Frozen normalisation layers also stay in eval mode during training, so their running statistics do
not drift either (:func:`set_train_mode`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..backbones.spec import BackboneSpec
from ..errors import ConfigError, did_you_mean
from .head import head_parameter_names

FREEZE_MODES = ("all-but-head", "none", "up-to")


@dataclass(frozen=True)
class FreezePolicy:
    """A parsed ``--freeze`` value: ``mode`` in :data:`FREEZE_MODES` and, for ``up-to``, the layer."""

    mode: str
    layer: str | None = None

    def __str__(self) -> str:
        return f"up-to:{self.layer}" if self.mode == "up-to" else self.mode


def parse_freeze(text: str | FreezePolicy) -> FreezePolicy:
    """Parse ``all-but-head``, ``none``, ``up-to:LAYER`` (also ``up-to LAYER`` / ``up-to=LAYER``)."""
    if isinstance(text, FreezePolicy):
        return text
    raw = str(text).strip()
    for sep in (":", "=", " "):
        head, found, rest = raw.partition(sep)
        if found and head == "up-to":
            if not rest.strip():
                break
            return FreezePolicy("up-to", rest.strip())
    if raw in ("all-but-head", "none"):
        return FreezePolicy(raw)
    raise ConfigError(f"unknown --freeze value {raw!r}; expected all-but-head, none or up-to:LAYER "
                      "(LAYER: a cut point of `transferlab layers BACKBONE` or a dotted module path)."
                      f"{did_you_mean(raw, ['all-but-head', 'none', 'up-to:'])}")


def _layer_module_path(model: nn.Module, spec: BackboneSpec, layer: str) -> str:
    """The module ``up-to:LAYER`` names, through the registry's one layer reference (a cut point, graph node
    or module path); a function node or a composite cell is no point to freeze up to."""
    from ..backbones import resolve_layer

    modules = dict(model.named_modules())
    if layer not in spec.cut_points and layer in modules and layer:
        return layer
    try:
        ref = resolve_layer(spec, layer, shape=False)
    except ConfigError as error:
        raise ConfigError(f"--freeze up-to:{layer}: {error}") from None
    if ref.composite:
        raise ConfigError(f"--freeze up-to:{layer}: a composite cell is a feature layer, not a point in the "
                          f"network; freeze up to one of its parts ({ref.parts[0].name} or {ref.parts[1].name})")
    if ref.module is None or ref.module not in modules:
        usable = [name for name, node in spec.cut_points.items() if node in modules]
        raise ConfigError(f"--freeze up-to:{layer}: {layer!r} is not a module of {spec.name} (it is a function "
                          f"in the graph, not a module); expected one of {', '.join(usable)} or a dotted module "
                          f"path.{did_you_mean(layer, usable)}")
    return ref.module


def frozen_parameter_names(model: nn.Module, spec: BackboneSpec, policy: FreezePolicy | str) -> set[str]:
    """Names of the parameters the policy freezes (the head is never frozen)."""
    policy = parse_freeze(policy)
    head = head_parameter_names(model, spec)
    names = [name for name, _ in model.named_parameters()]
    if policy.mode == "none":
        return set()
    if policy.mode == "all-but-head":
        return set(names) - head
    target = _layer_module_path(model, spec, policy.layer or "")
    # Module registration order follows the forward order for the registry's networks; a module's
    # descendants directly follow it, so "up to and including target" is an index bound.
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    last = max(i for name, i in order.items() if name == target or name.startswith(target + "."))
    frozen = {n for n in names if order[n.rpartition(".")[0]] <= last}
    if frozen & head:
        raise ConfigError(f"--freeze up-to:{policy.layer} would freeze the new head {spec.head}; choose an "
                          "earlier layer or --freeze all-but-head")
    return frozen


def apply_freeze(model: nn.Module, spec: BackboneSpec, policy: FreezePolicy | str) -> set[str]:
    """Set ``requires_grad`` by the policy; return the frozen parameter names."""
    frozen = frozen_parameter_names(model, spec, policy)
    for name, param in model.named_parameters():
        param.requires_grad_(name not in frozen)
    return frozen


def frozen_norm_modules(model: nn.Module) -> list[nn.Module]:
    """Normalisation layers (BatchNorm and friends) whose parameters are all frozen."""
    out = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                out.append(module)
    return out


def set_train_mode(model: nn.Module) -> None:
    """``model.train()`` but frozen normalisation layers stay in eval mode (running stats unchanged)."""
    model.train()
    for module in frozen_norm_modules(model):
        module.eval()


def parameter_groups(model: nn.Module, spec: BackboneSpec, lr: float,
                     backbone_lr_factor: float = 1.0) -> list[dict]:
    """Trainable parameters as optimiser groups: the head at ``lr``, the backbone at ``lr * factor``."""
    if not backbone_lr_factor > 0:
        raise ConfigError(f"--backbone-lr-factor must be positive; got {backbone_lr_factor}")
    head = head_parameter_names(model, spec)
    head_params = [p for n, p in model.named_parameters() if n in head and p.requires_grad]
    body_params = [p for n, p in model.named_parameters() if n not in head and p.requires_grad]
    groups = [{"params": head_params, "lr": lr, "name": "head"}]
    if body_params:
        groups.append({"params": body_params, "lr": lr * backbone_lr_factor, "name": "backbone"})
    return groups
