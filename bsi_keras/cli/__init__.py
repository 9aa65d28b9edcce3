"""The command line: flags -> `RunSpec` -> runs, sweeps and reports.

- `flags`: the argparse parser, the defaults per dataset family, the reference's spellings;
- `spec`, `schedule_spec`: `RunSpec`, the typed run its flags ask for (`SpecError` names
  the flag of a bad value), saved in ``config.json``;
- `run`: ``python -m bsi_keras.run`` (executing a spec, the dry run), `resume`;
- `sweep`: ``python -m bsi_keras.sweep`` (recipes as lists of specs);
- `report`: ``python -m bsi_keras.report`` (result tables from run folders);
- `critical_batch`: ``python -m bsi_keras.critical_batch`` (the critical-batch probe).
"""

from bsi_keras.cli.checks import SpecError
from bsi_keras.cli.flags import (
    COMPARED,
    FAMILY_DEFAULTS,
    SCHEDULES,
    SWITCHES,
    build_parser,
    flag_table,
    parse,
)
from bsi_keras.cli.schedule_spec import ScheduleSpec
from bsi_keras.cli.spec import ModelSpec, OptimizerSpec, RunOptions, RunSpec, StepSpec

__all__ = [
    "COMPARED",
    "FAMILY_DEFAULTS",
    "SCHEDULES",
    "SWITCHES",
    "ModelSpec",
    "OptimizerSpec",
    "RunOptions",
    "RunSpec",
    "ScheduleSpec",
    "SpecError",
    "StepSpec",
    "build_parser",
    "flag_table",
    "parse",
]
