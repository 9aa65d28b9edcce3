"""The README's example runs as written, and its flag table matches the parser."""

import re
from pathlib import Path

from bsi_keras import cli

README = (Path(__file__).parent.parent / "README.md").read_text()


def marked_code(marker: str) -> str:
    match = re.search(rf"<!-- {marker}[^>]*-->\s*```python\n(.*?)```", README, re.S)
    assert match, f"no code block marked {marker}"
    return match.group(1)


def test_keras_user_example_runs_as_written():
    namespace: dict = {}
    exec(compile(marked_code("readme-example"), "README.md", "exec"), namespace)
    history = namespace["history"]
    assert history.history["batch_size"] == [100, 100, 500, 500, 2500, 2500]
    assert history.history["updates"][-1] == 2 * (40 + 8 + 2)
    assert len(history.epoch) == 6


def test_flag_table_is_current():
    assert cli.flag_table() in README, "regenerate the README's flag table: cli.flag_table()"
