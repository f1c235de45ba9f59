"""What one forward pass shows that the dependency graph does not: head views and parameters read outside their layer.

Torch-Pruning couples channels index by index. Two things in a forward need more than that, and both are seen by
watching the torch calls of one pass (a TorchFunctionMode), knowing which module is running:
- a layer's output channels split by a reshape into (blocks, block), as attention heads are
  (`q(x).view(B, T, -1, head_dim)`): those channels can only go a whole block at a time, and only when the
  number of blocks is inferred (-1) rather than written into the code;
- a layer's parameter read by other code (`F.linear(x, self.head.weight)` in a parent's forward): whatever the
  graph says about that layer's channels is incomplete.
A tensor is followed from a layer's output through channel slices (split, chunk) and through calls that keep its
shape (bias adds, activations, dropout); any other call ends the trail.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from prunekit.pruning.structured.inputs import run_named

# whether a head count read from a module attribute (num_heads) lets whole heads go; prune_channels turns it off
# for a second try when a cut made that way fails (a forward that also reshapes with a fixed width)
HEAD_ATTRS: ContextVar[bool] = ContextVar("head_attrs", default=True)
PRODUCERS = (nn.modules.conv._ConvNd, nn.Linear, nn.Embedding)
_RESHAPES = {"view", "reshape", "unflatten"}
_SLICES = {"split", "chunk", "split_with_sizes", "tensor_split"}
_REORDERS = {"transpose", "permute", "t", "swapaxes", "swapdims", "movedim", "flip", "roll", "rot90", "mT", "T"}


@dataclass(frozen=True)
class Split:
    """Channels [offset, offset + length) of `layer`'s output divided by the code of module `where`:
    - kind "view": reshaped into blocks of `block` consecutive channels (attention heads); `free` when the number
      of blocks is inferred (-1), so fewer blocks still fit;
    - kind "chunk": cut into equal pieces of `block` channels (chunk(n)), which stay equal only if each piece
      loses the same positions; always `free`;
    - kind "split": cut into pieces of sizes written in the code (split(size)); never `free`."""

    layer: str
    offset: int
    length: int
    block: int
    free: bool
    where: str
    shape: tuple[int, ...]
    kind: str = "view"
    attr: str = ""  # the attribute of module `where` holding the block count (num_heads), updated after a cut


@dataclass
class Recording:
    output: Any = None
    splits: list[Split] = field(default_factory=list)
    direct: dict[str, str] = field(default_factory=dict)  # parameter name -> module whose code read it
    ran: set[str] = field(default_factory=set)  # modules whose forward ran


@dataclass(frozen=True)
class _Trail:
    layer: str
    dim: int
    offset: int
    length: int


def record(model: nn.Module, inputs: Any) -> Recording:
    """Run `model(inputs)` once, watching its torch calls (the caller sets the mode and autograd); a failure is a
    UserError naming the module."""
    rec = Recording()
    names = {m: n for n, m in model.named_modules()}
    owners: dict[int, list[str]] = defaultdict(list)  # parameter -> modules holding it
    for name, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            owners[id(p)].append(f"{name}.{pname}" if name else pname)
    stack: list[nn.Module] = []
    watcher = _Watcher(rec, stack, names, owners)

    def enter(module: nn.Module, _: Any) -> None:
        stack.append(module)
        rec.ran.add(names[module])

    def leave(module: nn.Module, _: Any, out: Any) -> None:
        if stack:
            stack.pop()
        linear = isinstance(module, nn.Linear | nn.Embedding) or type(module).__name__ == "Conv1D"
        if (linear or isinstance(module, PRODUCERS)) and isinstance(out, Tensor):
            watcher.paused = True  # the hook's own tensor calls are not the model's
            ndim = out.dim()
            dim = ndim - 1 if linear else ndim - len(module.kernel_size) - 1
            if ndim >= 1 and dim >= 0:
                watcher.trails[id(out)] = (_Trail(names[module], dim, 0, out.shape[dim]), out)
            watcher.paused = False

    hooks = [m.register_forward_pre_hook(enter) for m in model.modules()]
    hooks += [m.register_forward_hook(leave, always_call=True) for m in model.modules()]
    try:
        with watcher:
            rec.output = run_named(model, inputs, "while tracing")
    finally:
        for h in hooks:
            h.remove()
    return rec


class _Watcher(TorchFunctionMode):
    def __init__(
        self, rec: Recording, stack: list[nn.Module], names: dict[nn.Module, str], owners: dict[int, list[str]]
    ) -> None:
        super().__init__()
        self.rec, self.stack, self.names, self.owners = rec, stack, names, owners
        self.trails: dict[int, tuple[_Trail, Tensor]] = {}  # the tensor is kept so its id is not reused
        self.paused = False

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.paused:
            return out
        name = getattr(func, "__name__", "")
        if name != "__get__":  # reading .dtype, .shape or .device of a weight does not use its values
            self._direct(args, kwargs)
        source = next((a for a in args if isinstance(a, Tensor) and id(a) in self.trails), None)
        if source is not None and name not in _REORDERS:
            trail = self.trails[id(source)][0]
            if name in _RESHAPES and isinstance(out, Tensor):
                self._reshape(trail, source, out, name, args, kwargs)
            elif name in _SLICES and isinstance(out, tuple | list):
                self._slices(trail, out, _dim(args, kwargs, source.dim()), name, args)
            elif isinstance(out, Tensor) and out.shape == source.shape:
                self.trails[id(out)] = (trail, out)
        return out

    def _running(self) -> str:
        return self.names.get(self.stack[-1], "?") if self.stack else ""

    def _direct(self, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
        """A parameter passed to a torch call while neither its module nor a built-in parent of it is running."""
        running = self.stack[-1] if self.stack else None
        here = self._running()
        for value in (*args, *kwargs.values()):
            if not isinstance(value, nn.Parameter):
                continue
            holders = self.owners.get(id(value), [])
            modules = [h.rpartition(".")[0] for h in holders]
            if here in modules:
                continue
            if _composite(running) and any(m.startswith(here + ".") for m in modules):
                continue  # e.g. MultiheadAttention reading its out_proj's weight
            for holder in holders:
                self.rec.direct.setdefault(holder, here or "the model's forward")

    def _reshape(self, trail: _Trail, source: Tensor, out: Tensor, name: str, args: Sequence[Any], kw: Any) -> None:
        d, before, after = trail.dim, tuple(source.shape), tuple(out.shape)
        if after[:d] != before[:d]:
            return
        if after[: d + 1] == before[: d + 1]:
            self.trails[id(out)] = (trail, out)  # the channel dim is untouched
            return
        where = self._running()
        for k in (2, 3):  # (heads, head_dim), or (q/k/v, heads, head_dim) of a fused projection
            dims = after[d : d + k]
            if (
                len(dims) == k
                and math.prod(dims) == before[d]
                and min(dims) > 1
                and math.prod(after[d + k :]) == math.prod(before[d + 1 :])  # later dims may merge
            ):
                heads = d + k - 2
                asked = _requested(name, args, kw, heads)
                running = self.stack[-1] if self.stack and HEAD_ATTRS.get() else None
                attr = "" if asked == -1 or trail.offset else _count_attr(running, asked)
                if k == 3:  # equal q, k and v pieces: each loses the same heads
                    piece = dims[1] * dims[2]
                    self.rec.splits.append(
                        Split(trail.layer, trail.offset, trail.length, piece, True, where, dims, "chunk")
                    )
                free = asked == -1 or bool(attr)
                self.rec.splits.append(
                    Split(trail.layer, trail.offset, trail.length, dims[-1], free, where, after, "view", attr)
                )
                return

    def _slices(self, trail: _Trail, pieces: Sequence[Any], dim: int, name: str, args: Sequence[Any]) -> None:
        if dim == trail.dim and pieces:
            sizes = tuple(int(p.shape[dim]) for p in pieces if isinstance(p, Tensor))
            equal = name == "chunk" or (name == "tensor_split" and len(args) > 1 and isinstance(args[1], int))
            equal = equal and len(set(sizes)) == 1
            kind = "chunk" if equal else "split"
            self.rec.splits.append(
                Split(trail.layer, trail.offset, trail.length, sizes[0], equal, self._running(), sizes, kind)
            )
        start = trail.offset
        for piece in pieces:
            if not isinstance(piece, Tensor):
                return
            if dim == trail.dim:
                width = piece.shape[dim]
                self.trails[id(piece)] = (_Trail(trail.layer, dim, start, width), piece)
                start += width
            else:
                self.trails[id(piece)] = (trail, piece)


HEAD_COUNTS = ("num_heads", "n_heads", "n_head", "heads", "num_attention_heads")


def _count_attr(module: nn.Module | None, count: int | None) -> str:
    """The attribute of `module` that holds `count` blocks (a head count stored on an attention), or "" (also when
    the module holds a per-head table, a bias indexed by head, that a cut of the projections would not narrow)."""
    if module is None or _per_head_table(module, count):
        return ""
    for attr in HEAD_COUNTS:
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value == count and value > 1:
            return attr
    return ""


def _per_head_table(module: nn.Module, count: int | None) -> bool:
    for sub in module.modules():
        if isinstance(sub, nn.Linear | nn.modules.conv._ConvNd):
            continue
        if any(count in p.shape for p in sub.parameters(recurse=False)):
            return True
    return False


def _composite(module: nn.Module | None) -> bool:
    """A built-in module that runs its children's parameters itself (MultiheadAttention and its pruned form)."""
    return module is not None and (
        type(module).__module__.startswith("torch.nn") or isinstance(module, nn.MultiheadAttention)
    )


def _dim(args: Sequence[Any], kwargs: dict[str, Any], ndim: int) -> int:
    dim = kwargs.get("dim", args[2] if len(args) > 2 and isinstance(args[2], int) else 0)
    return dim % ndim if ndim else 0


def _requested(name: str, args: Sequence[Any], kwargs: dict[str, Any], d: int) -> int | None:
    """The size the code asked for at output position `d` of a view/reshape/unflatten (-1 when inferred)."""
    if name == "unflatten":
        sizes = kwargs.get("sizes", args[2] if len(args) > 2 else None)
        return int(sizes[0]) if isinstance(sizes, Sequence) and sizes else None
    shape: Any = args[1:] if len(args) > 1 else kwargs.get("shape", ())
    if len(shape) == 1 and isinstance(shape[0], Sequence):
        shape = shape[0]
    return int(shape[d]) if d < len(shape) and isinstance(shape[d], int) else None
