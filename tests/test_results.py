"""The README's result tables agree with the run logs committed under results/."""

import importlib.util
import sys
from pathlib import Path

RESULTS = Path(__file__).parent.parent / "results"
README = RESULTS.parent / "README.md"


def load_tables():
    spec = importlib.util.spec_from_file_location("results_tables", RESULTS / "tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tables = load_tables()


def test_readme_result_tables_are_those_of_the_logs():
    text = README.read_text()
    written = tables.marked_tables(text)
    assert written, "README.md marks no results table"
    regenerated = tables.marked_tables(tables.regenerate(text))
    for name, table in written.items():
        assert table == regenerated[name], f"regenerate {name}: python results/tables.py"


def test_results_hold_logs_not_checkpoints_or_weights():
    folders = [p.parent for p in RESULTS.rglob("summary.json")]
    assert folders
    for folder in folders:
        assert {"config.json", "log.csv", "summary.json"} <= {p.name for p in folder.iterdir()}
    assert not list(RESULTS.rglob("checkpoint.npz")) and not list(RESULTS.rglob("weights"))
