"""Result tables from run folders (Markdown and CSV).

``python -m bsi_keras.report RUN_FOLDER ...`` prints the Markdown table.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
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
        "optimizer": config.get("args", {}).get("optimizer")
        or config.get("optimizer", {}).get("class_name", "?"),
        "status": summary["status"],
        "test accuracy": f"{100 * accuracy:.2f}%" if accuracy is not None else "",
        "updates": summary["total_updates"],
        "train s": f"{summary['train_seconds']:.1f}",
        "compile s": f"{summary['compile_seconds']:.1f}",
    }


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


if __name__ == "__main__":
    print(summary_table(sys.argv[1:]), end="")
