"""Training through rewritten weights: while a hook is attached, each module that reads a prunable tensor W reads
f(W) instead (STR's soft threshold, AutoPrune's gate, BitPruning's quantiser).

The parameters stay the model's own (the latent W), so the model's state_dict keeps its keys and every epoch
checkpoint is an ordinary one; only the forwards of the modules that read the tensors are wrapped, and `restore()`
gives them back. Works for every layer kind prunekit covers (Conv, ConvTranspose, Linear, MultiheadAttention,
LSTM/GRU/RNN through their cached flat weights, embeddings) and for each module of a shared tensor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.pruning.coverage import uses_of


@contextlib.contextmanager
def swapped(module: nn.Module, weights: list[tuple[str, Tensor]]) -> Iterator[None]:
    """Within the block, `module` reads the given tensors in place of its parameters at those attribute paths
    (recurrent layers also through their cached flat weight list)."""
    restore = []
    try:
        for path, tensor in weights:
            owner_path, _, name = path.rpartition(".")
            owner = module.get_submodule(owner_path) if owner_path else module
            restore.append((owner, name, owner._parameters[name]))
            owner._parameters[name] = tensor
            if isinstance(owner, nn.RNNBase):
                owner._flat_weights[owner._flat_weights_names.index(name)] = tensor
        yield
    finally:
        for owner, name, param in reversed(restore):
            owner._parameters[name] = param
            if isinstance(owner, nn.RNNBase):
                owner._flat_weights[owner._flat_weights_names.index(name)] = param


class Reparameterised:
    """Until `restore()`, every module reading `names[i]` reads `weight(i)` instead (computed at each forward)."""

    def __init__(self, model: nn.Module, names: list[str], weight: Callable[[int], Tensor], method: str) -> None:
        uses = uses_of(model, names)
        readers: dict[str, list[tuple[int, str]]] = {}
        for i, name in enumerate(names):
            if name not in uses:
                raise UserError(f"method {method} rewrites the weights of known layers; {name} is not one of them")
            for use in uses[name]:
                readers.setdefault(use.module, []).append((i, use.attr))
        self.forwards: list[tuple[nn.Module, Any]] = []
        for module_name, slots in readers.items():
            module = model.get_submodule(module_name)
            self.forwards.append((module, module.__dict__.get("forward")))
            module.forward = self._forward(module, module.forward, slots, weight)

    @staticmethod
    def _forward(
        module: nn.Module, original: Callable[..., Any], slots: list[tuple[int, str]], weight: Callable[[int], Tensor]
    ) -> Callable[..., Any]:
        def forward(*args: Any, **kwargs: Any) -> Any:
            with swapped(module, [(attr, weight(i)) for i, attr in slots]):
                return original(*args, **kwargs)

        return forward

    def restore(self) -> None:
        for module, forward in self.forwards:
            if forward is None:
                del module.forward
            else:
                module.forward = forward
        self.forwards = []
