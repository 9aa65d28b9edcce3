"""The command line: flags -> `RunSpec` -> runs, sweeps and reports.

- `flags`: the argparse parser, the defaults per dataset family, the reference's spellings;
- `spec`, `parts`, `schedule_spec`: `RunSpec`, the typed run its flags ask for (`SpecError`
  names the flag of a bad value), saved in ``config.json``;
- `run`: ``python -m bsi_keras.run`` (executing a spec), `build` (its model and physical
  batch), `dry_run` (the phase tables), `resume`;
- `sweep`: ``python -m bsi_keras.sweep``, its `recipes` (lists of specs) and `claims` (several
  workers on one sweep);
- `launch`: ``python -m bsi_keras.launch`` (N processes of one machine train one run);
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
from bsi_keras.cli.parts import ModelSpec, OptimizerSpec, RunOptions, StepSpec
from bsi_keras.cli.schedule_spec import ScheduleSpec
from bsi_keras.cli.spec import RunSpec

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
