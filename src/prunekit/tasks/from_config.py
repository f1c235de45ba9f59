"""The Task a config names: a zoo or user model (`package.module:factory`) on a built-in, image-folder or user dataset.

Paths, fastest first:
- a built-in dataset (mnist, cifar10, ...) held in memory as tensors: TensorTask, the default;
- the same through DataLoaders (`data.loader: true`), an image folder (`data.name: imagefolder`) or a user data
  factory: LoaderTask, batches from DataLoaders with `data.workers` and `data.pin_memory`.
A user data factory is called as `factory(**data.args)` and returns either a prunekit.data.Dataset (in-memory
tensors, the fast path) or a mapping with "train" and optionally "val", "test" (each a torch Dataset, which prunekit
batches with train.batch_size / train.eval_batch_size, or an iterable of batches such as a DataLoader), "loss"
(`loss(model, batch)`), "inputs" (`inputs(batch)`), "metric" (a name or `metric(model, batches)`),
"higher_is_better", and "num_classes"/"input_shape" (passed to zoo models, and to user factories that take them).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from prunekit.common import user_code
from prunekit.common.batches import make_objective
from prunekit.common.errors import UserError
from prunekit.common.example_spec import spec_of
from prunekit.config import Config

KEYS = ("train", "val", "test", "loss", "inputs", "metric", "higher_is_better", "num_classes", "input_shape")


class UserModel:
    """A model factory that tags what it builds with the `arch` that rebuilds it: `{"name": ref, "args": args,
    "example": spec of one input}` (the example is filled in once the task knows its data)."""

    def __init__(self, ref: str, args: dict[str, Any], fn: Callable[..., Any] | None = None) -> None:
        self.ref, self.args = ref, dict(args)
        self.fn = fn if fn is not None else user_code.resolve(ref, "model.name")
        self.example: Callable[[], Any] | None = None

    def fill(self, num_classes: int | None, input_shape: tuple[int, ...] | None) -> None:
        """Pass the data's num_classes/input_shape to a factory that takes them and was not given them."""
        try:
            params = inspect.signature(self.fn).parameters
        except (TypeError, ValueError):
            return
        for key, value in (("num_classes", num_classes), ("input_shape", input_shape)):
            if key in params and key not in self.args and value is not None:
                self.args[key] = list(value) if isinstance(value, tuple) else value

    def __call__(self) -> nn.Module:
        model = user_code.call(self.fn, self.args, self.ref)
        if not isinstance(model, nn.Module):
            raise UserError(f"{self.ref} returned a {type(model).__name__}, not an nn.Module")
        spec = spec_of(self.example()) if self.example is not None else None
        model.arch = {"name": self.ref, "args": self.args, **({"example": spec} if spec is not None else {})}
        return model


def importable(fn: Any) -> str | None:
    """`module:qualname` of a module-level function or class that an --import can find again, else None."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname or not user_code.REF.match(f"{module}:{qualname}"):
        return None
    return f"{module}:{qualname}"


def build_task(cfg: Config) -> Any:
    """The Task of `cfg` (see the module docstring); user code must have been allowed (prunekit.common.user_code)."""
    from prunekit.data import load_dataset
    from prunekit.data.dataset import Dataset, limit_train
    from prunekit.models import MODELS
    from prunekit.tasks.tensors import TensorTask

    d, name = cfg.data, cfg.model.name
    user_model = UserModel(name, cfg.model.args) if user_code.is_ref(name) else None
    if user_model is None:
        MODELS.get(name)  # an unknown model fails before any data is read
        if cfg.model.args:
            raise UserError(f"model.args are for package.module:factory models; {name} is from the zoo")
    if d.name == "imagefolder":
        from prunekit.data.imagefolder import image_folder

        _no_limit(d, "imagefolder")

        return _loader_task(cfg, image_folder(d, cfg.seed), user_model)
    if user_code.is_ref(d.name):
        data = user_code.call(user_code.resolve(d.name, "data.name"), dict(d.args), d.name)
        if not isinstance(data, Dataset):
            _no_limit(d, "a data factory that returns datasets or loaders")
            return _loader_task(cfg, _mapping(data, d.name), user_model)
        data = limit_train(data, d.train_limit)
    else:
        if d.args:
            raise UserError(f"data.args are for package.module:factory data; {d.name} is built in")
        data = load_dataset(d, cfg.seed)
    if d.loader:
        from prunekit.data.loaders import tensor_loaders

        splits = tensor_loaders(data, cfg.train.batch_size, cfg.train.eval_batch_size, d)
        info = {**splits, "num_classes": data.num_classes, "input_shape": data.input_shape}
        return _loader_task(cfg, info, user_model, metric=getattr(data, "metric", "accuracy"))
    if user_model is not None:
        user_model.fill(data.num_classes, data.input_shape)
        user_model.example = lambda: data.train_x[:1]
    return TensorTask(data, name, dataset_name=d.name, factory=user_model)


def _no_limit(d: Any, what: str) -> None:
    if d.train_limit is not None:
        raise UserError(f"data.train_limit applies to in-memory tensor datasets, not to {what}: remove it")


def _mapping(data: Any, ref: str) -> dict[str, Any]:
    if isinstance(data, tuple | list) and len(data) == 3:
        data = dict(zip(("train", "val", "test"), data, strict=True))
    if not isinstance(data, Mapping) or "train" not in data:
        raise UserError(
            f"{ref} returned a {type(data).__name__}: a data factory returns a prunekit.data.Dataset, a (train, val, "
            "test) tuple or a mapping with 'train' (and optionally val, test, loss, inputs, metric)"
        )
    unknown = sorted(set(map(str, data)) - set(KEYS))
    if unknown:
        raise UserError(f"{ref} returned unknown keys {unknown}; known: {', '.join(KEYS)}")
    return dict(data)


def _loader_task(cfg: Config, info: dict[str, Any], user_model: UserModel | None, metric: Any = None) -> Any:
    from prunekit.data.loaders import AugmentedBatches, is_dataset, make_loader
    from prunekit.models import create_model
    from prunekit.tasks.loader import LoaderTask

    d, t = cfg.data, cfg.train
    splits = {}
    for split in ("train", "val", "test"):
        data = info.get(split)
        if is_dataset(data):
            train = split == "train"
            data = make_loader(data, t.batch_size if train else t.eval_batch_size, train, d)
            data = AugmentedBatches(data) if train and d.augment else data
        splits[split] = data
    classes, shape = info.get("num_classes"), info.get("input_shape")
    if user_model is not None:
        user_model.fill(classes, tuple(shape) if shape is not None else None)
        factory: Callable[[], nn.Module] = user_model
    elif classes is None or shape is None:
        raise UserError(f"zoo model {cfg.model.name} needs num_classes and input_shape: return them from {d.name}")
    else:
        factory = lambda: create_model(cfg.model.name, int(classes), tuple(shape))  # noqa: E731
    task = LoaderTask(
        factory,
        splits["train"],
        splits["val"],
        splits["test"],
        objective=make_objective(info.get("loss"), info.get("inputs")),
        metric=info.get("metric") or metric or "accuracy",
        higher_is_better=info.get("higher_is_better"),
        model_name=cfg.model.name,
        dataset_name=d.name,
    )
    if user_model is not None:
        user_model.example = task.example_input
    return task
