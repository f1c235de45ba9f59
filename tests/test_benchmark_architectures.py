"""benchmarks/architectures.py (the broad check of issue 26) still runs and reports what it promises: per network
pruned / refused / raw / timeout, seconds, and an exact compact round trip for every pruned one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_broad_check_reports_each_network_and_its_round_trip():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "architectures.py"), "--only", "ghost", "swin_relpos"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out = json.loads(done.stdout)
    rows = {r["network"]: r for r in out["rows"]}
    assert out["summary"]["counts"] == {"pruned": 1, "refused": 1}
    assert rows["ghost"]["status"] == "pruned" and rows["ghost"]["params_after"] < rows["ghost"]["params"]
    assert rows["ghost"]["round_trip_exact"] is True
    assert "to ignore" in rows["swin_relpos"]["reason"] and rows["swin_relpos"]["seconds"] < 30
