"""``python -m bsi_keras.launch --nproc N -- RUN FLAGS``: N processes of one machine train
one run together.

The launcher picks a free port of the loopback interface for the coordinator, starts N
``python -m bsi_keras.run RUN FLAGS --distribute`` processes with the environment that
`bsi_keras.runtime.distribution.Cluster.from_environment` reads
(``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``KERAS_DISTRIBUTION_NUM_PROCESSES``,
``KERAS_DISTRIBUTION_PROCESS_ID``) and waits for them. Process 0 writes the run folder. If
one process fails or dies, the others could wait for it forever inside a collective: the
launcher names the one that failed, stops the others (SIGTERM, then SIGKILL after
`GRACE_S` seconds) and exits with the failed one's code (128 + the signal's number for a
signal). SIGINT and SIGTERM to the launcher are passed on to every process. On several
machines, a scheduler starts the processes instead (``srun``: see the README's Scale
section).

Example (one device per process, on this machine's CPU)::

    python -m bsi_keras.launch --nproc 2 -- --dataset mnist_sample --epochs 2 --filename runs/two

>>> environment({}, "127.0.0.1:1234", 2, 1)["KERAS_DISTRIBUTION_PROCESS_ID"]
'1'
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

GRACE_S = 10.0  # how long the others may take to stop after one failed
POLL_S = 0.1


def free_port() -> int:
    """A TCP port of the loopback interface that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(
    base: Mapping[str, str], coordinator: str, num_processes: int, process_id: int
) -> dict[str, str]:
    """``base`` with the variables that make a process ``process_id`` of the cluster."""
    return {
        **base,
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": coordinator,
        "KERAS_DISTRIBUTION_NUM_PROCESSES": str(num_processes),
        "KERAS_DISTRIBUTION_PROCESS_ID": str(process_id),
        "PYTHONUNBUFFERED": "1",
    }


def launch(nproc: int, run_flags: Sequence[str], grace_s: float = GRACE_S) -> int:
    """Train one run with ``nproc`` processes of this machine; return the exit code.

    Args:
        nproc: the number of processes.
        run_flags: the flags of ``python -m bsi_keras.run`` (``--distribute`` is added).
        grace_s: seconds the others get to stop after one failed, before SIGKILL.

    Returns:
        0 when every process succeeded, else the code of the first one that failed.
    """
    coordinator = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "bsi_keras.run", *run_flags]
    if "--distribute" not in run_flags:
        command.append("--distribute")
    processes = [
        subprocess.Popen(command, env=environment(os.environ, coordinator, nproc, index))
        for index in range(nproc)
    ]
    with _passing_signals_to(processes):
        while True:
            codes = [process.poll() for process in processes]
            failed = next((i for i, code in enumerate(codes) if code not in (None, 0)), None)
            if failed is not None:
                print(
                    f"launch: process {failed} (pid {processes[failed].pid}) "
                    f"{_ended(codes[failed])}; stopping the other processes",
                    file=sys.stderr,
                )
                _stop(processes, grace_s)
                return codes[failed] if codes[failed] > 0 else 128 - codes[failed]
            if all(code == 0 for code in codes):
                return 0
            time.sleep(POLL_S)


def _ended(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _stop(processes: Sequence[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM every running process, SIGKILL those still running after ``grace_s``."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + grace_s
    for index, process in enumerate(processes):
        if process not in running:
            continue
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
            print(f"launch: process {index} stopped", file=sys.stderr)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            print(f"launch: process {index} killed after {grace_s:g} s", file=sys.stderr)


@contextlib.contextmanager
def _passing_signals_to(processes: Sequence[subprocess.Popen]) -> Iterator[None]:
    """SIGINT and SIGTERM to the launcher go to every process (which stop by themselves)."""

    def forward(signum: int, frame: Any) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    previous = {
        signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bsi_keras.launch --nproc N -- RUN FLAGS``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, run_flags = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    parser = argparse.ArgumentParser(prog="python -m bsi_keras.launch", description=__doc__)
    parser.add_argument("--nproc", type=int, required=True, help="number of processes")
    parser.add_argument(
        "--grace",
        type=float,
        default=GRACE_S,
        help="seconds the others get to stop after one failed",
    )
    args = parser.parse_args(own)
    if args.nproc < 1:
        parser.error(f"argument --nproc: must be at least 1, got {args.nproc}")
    if not run_flags:
        parser.error("the run's flags go after --, e.g. --nproc 2 -- --dataset mnist_sample")
    return launch(args.nproc, run_flags, args.grace)
