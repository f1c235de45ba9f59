"""Methods decide when to prune and how to retrain; each is a pure function returning the list of rounds.

A method is `plan(cfg: Config, sizes: dict[name, int]) -> list[RoundPlan]`, registered in METHODS. `sizes` holds
the prunable tensors' numels for unstructured runs, and the prunable channel groups' widths (named after their first
producing layer, in network order) for channel runs. The runner executes the plans; nothing here touches a model or
a file, so every schedule is testable on its own.
"""

from prunekit.pruning.methods import (  # noqa: F401  (each method registers itself in METHODS on import)
    amc,
    at_init,
    autoprune,
    bitprune,
    compress,
    gradual,
    imp,
    oneshot,
    sequential,
    soft_threshold,
)
from prunekit.pruning.methods.plan import (  # noqa: F401  (importable from here)
    METHODS,
    Method,
    RoundPlan,
    dense_round,
    iterations,
    no_pruning,
    replay,
    retrain_epochs,
)
