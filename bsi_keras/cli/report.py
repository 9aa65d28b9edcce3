"""Result tables from run folders (Markdown and CSV).

``python -m bsi_keras.report RUN_FOLDER ...`` prints the Markdown table (``--csv``: CSV); a
folder of run folders, such as the one ``--schedule all`` writes, stands for its runs.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS = (
    "run",
    "schedule",
    "optimizer",
    "status",
    "test accuracy",
    "updates",
    "train s",
    "s/epoch",
    "compile s",
)


def summary_row(folder: str | os.PathLike, label: str | None = None) -> dict[str, Any]:
    """One run's line: final test accuracy, updates and seconds from its ``summary.json``."""
    folder = Path(folder)
    summary = json.loads((folder / "summary.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    schedule = config.get("schedule", {})
    accuracy = summary.get("final_val_accuracy")
    return {
        "run": label or folder.name,
        "schedule": schedule.get("name", "?") if isinstance(schedule, dict) else "?",
        "optimizer": _optimizer_name(config),
        "status": summary["status"],
        "test accuracy": f"{100 * accuracy:.2f}%" if accuracy is not None else "",
        "updates": summary["total_updates"],
        "train s": f"{summary['train_seconds']:.1f}",
        "s/epoch": _seconds_per_epoch(summary),
        "compile s": f"{summary['compile_seconds']:.1f}",
    }


def _seconds_per_epoch(summary: dict[str, Any]) -> str:
    """Training seconds per finished epoch (compilation left out), as the seeds' tables."""
    epochs = summary.get("epochs_finished")
    return f"{summary['train_seconds'] / epochs:.1f}" if epochs else ""


def _optimizer_name(config: dict[str, Any]) -> str:
    """The optimizer a run's spec names (an older folder's ``args``), else Keras's class."""
    if "spec" in config:
        return config["spec"]["optimizer"]["name"]
    return config.get("args", {}).get("optimizer") or config.get("optimizer", {}).get(
        "class_name", "?"
    )


def summary_table(folders: Sequence[str | os.PathLike], fmt: str = "markdown") -> str:
    """A table with one `summary_row` per run folder.

    Args:
        folders: run folders (each with ``config.json`` and ``summary.json``).
        fmt: ``"markdown"`` or ``"csv"``.

    Returns:
        The table as text.
    """
    rows = [summary_row(f, f"{Path(f).parent.name}/{Path(f).name}") for f in folders]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def run_folders(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The run folders among ``paths``, each folder of run folders replaced by its runs.

    Raises:
        ValueError: a path is neither a run folder nor holds any.

    Example:

    >>> run_folders([])
    []
    """
    found: list[Path] = []
    for path in map(Path, paths):
        runs = (
            [path]
            if (path / "summary.json").is_file()
            else sorted(p.parent for p in path.glob("*/summary.json"))
        )
        if not runs:
            raise ValueError(f"{path} is not a run folder (no summary.json) and holds none")
        found += runs
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Print the results table of the run folders named in ``argv``."""
    parser = argparse.ArgumentParser(prog="python -m bsi_keras.report", description=__doc__)
    parser.add_argument("folders", nargs="+", help="run folders, or folders of run folders")
    parser.add_argument("--csv", action="store_true", help="CSV instead of Markdown")
    args = parser.parse_args(argv)
    try:
        folders = run_folders(args.folders)
    except ValueError as error:
        parser.error(str(error))
    print(summary_table(folders, "csv" if args.csv else "markdown"), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
