"""Reports from run directories (summary.json and config.yaml only, no training code): report.md, a self-contained
report.html and matplotlib figures, comparing runs and summarising sweeps over seeds."""

from prunekit.report.build import find_runs, load_summary, write_report, write_run_report

__all__ = ["find_runs", "load_summary", "write_report", "write_run_report"]
