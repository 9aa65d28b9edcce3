"""Resuming a run folder: its stored `RunSpec`, with the flags a resumed run may change.

The spec is the one the folder's ``config.json`` records (`RunSpec.from_run_config`: its
``spec``, or an older folder's ``args``); the schedule is rebuilt from it, never from the
folder's name, and `bsi_keras.cli.run.execute` checks that it is the stored one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from bsi_keras.cli import flags
from bsi_keras.cli.checks import SpecError
from bsi_keras.cli.spec import RunSpec

RESUME_MAY_CHANGE = ("resume", "verbose")


def resumed_spec(
    folder: str, given: Mapping[str, flags.FlagValue]
) -> tuple[RunSpec, dict[str, object]]:
    """The spec of the run in ``folder`` and its stored schedule config.

    Args:
        folder: the run folder.
        given: the flags given with ``--resume`` (`bsi_keras.cli.flags.explicit_flags`):
            ``--verbose`` may change; any other must agree with the stored spec.

    Raises:
        SpecError: not a run folder of this command line, or a contradicting flag.
    """
    from bsi_keras.run_folder import RunFolder, RunFolderError

    if not folder.strip():
        raise SpecError("--resume", "is empty: give the run folder to continue")
    try:
        config = RunFolder.open_existing(folder).read_config()
    except RunFolderError as error:
        raise SpecError("--resume", str(error)) from None
    if not isinstance(config.get("schedule"), dict):
        raise SpecError("--resume", f"{folder}'s config.json holds no schedule: it is damaged")
    spec = RunSpec.from_run_config(config, folder)
    _check_given(spec, _resolve_switches(given))
    verbose = given.get("verbose", spec.run.verbose)
    run = dataclasses.replace(spec.run, filename=str(folder), verbose=verbose)
    return dataclasses.replace(spec, run=run), config["schedule"]


def _resolve_switches(given: Mapping[str, flags.FlagValue]) -> dict[str, flags.FlagValue]:
    """``--LRD`` and the other switches as the ``--schedule`` they name."""
    resolved = {dest: value for dest, value in given.items() if dest not in flags.SWITCHES}
    for switch, name in flags.SWITCHES.items():
        if given.get(switch):
            resolved["schedule"] = name
    return resolved


def _check_given(spec: RunSpec, given: Mapping[str, flags.FlagValue]) -> None:
    stored = spec.flags()
    for dest, value in given.items():
        if dest not in RESUME_MAY_CHANGE and stored.get(dest) != value:
            raise SpecError(
                f"--{dest}",
                f"{value!r} contradicts the run's config.json ({stored.get(dest)!r}); a "
                "resumed run keeps its settings",
            )


def comparison_runs(folder: str) -> dict[Path, str | None]:
    """The runs of a ``--schedule all`` folder by their status (`RunFolder.status`), or {}
    for any other folder (one with a ``config.json`` of its own, or none of the three)."""
    from bsi_keras.run_folder import RunFolder

    root = Path(folder)
    if not root.is_dir() or (root / "config.json").exists():
        return {}
    runs = {root / name: RunFolder(root / name).status() for name in flags.COMPARED}
    return runs if any(status is not None for status in runs.values()) else {}
