"""Reports: Markdown tables and matplotlib figures from run directories (summary.json only, no training code)."""

from prunekit.report.build import find_runs, load_summary, write_report, write_run_report

__all__ = ["find_runs", "load_summary", "write_report", "write_run_report"]
