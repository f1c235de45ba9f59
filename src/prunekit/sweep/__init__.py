"""Many runs, one command: a sweep file expanded into run directories and run by an executor (local or Ray)."""

from prunekit.sweep.runner import run_sweep
from prunekit.sweep.spec import Point, Sweep, load, point_name

__all__ = ["Point", "Sweep", "load", "point_name", "run_sweep"]
