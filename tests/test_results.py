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


def test_epoch_table_by_hand(tmp_path):
    # Two seeds of one configuration; seed 1 logged no B_simple in epoch 1 (a blank cell).
    logs = {0: ["100,", "200,300.0"], 1: ["100,120.0", "400,500.0", "800,9.0"]}
    for seed, rows in logs.items():
        folder = tmp_path / "study" / "adaptive" / f"seed_{seed}"
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text('{"status": "finished"}')
        (folder / "config.json").write_text(f'{{"seed": {seed}}}')
        text = "epoch,batch_size,gns_b_simple\n"
        text += "".join(f"{e},{row}\n" for e, row in enumerate(rows, start=1))
        (folder / "log.csv").write_text(text)
    found = tables.report.configurations([tmp_path / "study"])
    lines = tables.epoch_table(found, ["batch_size", "gns_b_simple"]).splitlines()
    # Two epochs (those both seeds finished); batch 100, 100 and 200, 400 (300 +- 141);
    # B_simple 300 and 500 in epoch 2: 400 +- 141.
    assert lines[2] == "| run | seeds | log.csv column | epoch 1 | epoch 2 |"
    assert lines[4] == "| study/adaptive | 0 1 | batch_size | 100 +- 0 | 300 +- 141 |"
    assert lines[5] == "| study/adaptive | 0 1 | gns_b_simple |  | 400 +- 141 |"
