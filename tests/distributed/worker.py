"""Started by torchrun from test_ddp.py (not a test itself): a tiny IMP run on every rank through `Run`, in a process
group this script starts itself (as a user's script would); each rank saves the masks it pruned with and its final
weights, then checks that a deliberate difference between ranks is caught."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from prunekit.distributed import check_same, current  # noqa: E402
from prunekit.runner.experiment import Run  # noqa: E402
from tests.helpers import tiny  # noqa: E402


class Recording(Run):
    def _prune(self, plan, masks, target=None):  # noqa: ANN001, ANN202
        chosen = super()._prune(plan, masks, target)
        self.decided[plan.index] = {n: m.clone() for n, m in chosen.items()}
        return chosen


def main(out: Path, overrides: dict) -> None:
    torch.set_num_threads(1)
    if overrides.get("device") == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if overrides.get("device") == "cuda" else "gloo")
    rank = dist.get_rank()
    run = Recording(tiny(**overrides), out / "run", log=lambda _: None)
    run.decided = {}
    summary = run.execute()
    tensors = {f"round{i}::{n}": m.to(torch.uint8) for i, ms in run.decided.items() for n, m in ms.items()}
    tensors |= {f"final::{k}": v.contiguous() for k, v in run.model.state_dict().items()}
    save_file(tensors, out / f"rank{rank}.safetensors")
    caught = False
    try:
        check_same({"x": torch.tensor([float(rank)])}, "a deliberate difference", current())
    except RuntimeError:
        caught = True
    still_grouped = dist.is_initialized()  # a group the caller started is left to the caller
    (out / f"rank{rank}.json").write_text(
        json.dumps({"caught": caught, "grouped": still_grouped, "final": summary["final_accuracy"]})
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
