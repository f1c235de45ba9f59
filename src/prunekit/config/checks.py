"""The validation the config sections share: the MAX_* bounds and the checks that raise a UserError naming the key.

Upper bounds: far beyond any experiment in the literature, small enough that nothing built from a config can loop
for ever or allocate without limit before it starts.
"""

from __future__ import annotations

from typing import Any

from prunekit.common.errors import UserError
from prunekit.common.safe_text import short

MAX_EPOCHS = 10_000  # per round (train.epochs, prune.retrain_epochs, prune.tau, gradual epochs)
MAX_ROUNDS = 1_000  # pruning rounds (prune.rounds, or the rounds `rate` needs to reach `sparsity`)
MAX_BATCH = 1_000_000  # train.batch_size, train.eval_batch_size
MAX_EXAMPLES = 10_000_000  # data.train_size, data.test_size, data.val_size
MAX_EXAMPLE_VALUES = 2**20  # values per example, C x H x W (3 x 512 x 512 fits)
MAX_SYNTHETIC_VALUES = 2**28  # synthetic data in all: (train_size + test_size) x C x H x W (1 GiB of float32)
MAX_CLASSES = 100_000
MAX_LIST = 10_000  # entries of any list or mapping in the config (sparsities, milestones, ignore, layer_rate)
MAX_STEPS = 100_000  # prune.iterations, prune.score_batches
MAX_NAME = 100  # characters of a run name
MAX_STRING = 4_096  # characters of any other string (a path at most)
MAX_THREADS = 1_024


def check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise UserError(f"config key {key}: {message}")


def bounded(value: float | None, key: str, low: float, high: float, *, low_open: bool = False) -> None:
    """`value` (None allowed) within [low, high] ((low, high] when low_open), with the range in the message."""
    if value is None:
        return
    ok = (low < value if low_open else low <= value) and value <= high
    check(ok, key, f"must be in {'(' if low_open else '['}{low:g}, {high:g}], got {short(value)}")


def check_name(name: str, key: str = "name") -> None:
    """A run name becomes the directory runs/<name>: one path component, printable, not hidden, not too long."""
    bad = next((c for c in name if not c.isprintable() or c in "/\\"), None)
    check(0 < len(name) <= MAX_NAME, key, f"must be 1 to {MAX_NAME} characters, got {len(name)}")
    check(bad is None, key, f"{short(name)} contains {bad!r}: use a plain name (it becomes the directory runs/NAME)")
    check(not name.startswith("."), key, f"{short(name)} must not start with '.' (it becomes runs/NAME)")


FREE_FORM_NODES, FREE_FORM_DEPTH, FREE_FORM_TEXT = 10_000, 8, 10_000


def check_free_form(value: Any, key: str) -> None:
    """A user mapping (model.args, data.args): JSON-like values only, bounded in size and depth."""
    budget = [FREE_FORM_NODES]

    def walk(node: Any, depth: int, where: str) -> None:
        budget[0] -= 1
        check(budget[0] >= 0 and depth <= FREE_FORM_DEPTH, key, f"more than {FREE_FORM_NODES} values or too deep")
        if node is None or isinstance(node, bool | int):
            return
        if isinstance(node, float):
            check(node == node and abs(node) != float("inf"), where, "numbers must be finite")
        elif isinstance(node, str):
            check(len(node) <= FREE_FORM_TEXT, where, f"strings are at most {FREE_FORM_TEXT} characters")
        elif isinstance(node, list | tuple):
            for i, v in enumerate(node):
                walk(v, depth + 1, f"{where}[{i}]")
        elif isinstance(node, dict):
            for k, v in node.items():
                check(isinstance(k, str), where, f"mapping keys must be strings, got {k!r}")
                walk(v, depth + 1, f"{where}.{k}")
        else:
            check(False, where, f"expected a number, string, list or mapping, got {type(node).__name__}")

    check(isinstance(value, dict), key, f"expected a mapping, got {value!r}")
    walk(value, 0, key)
