"""The runtime: where training runs, and how reproducibly.

`distribution` puts training on every local device (and knows which backends can);
`determinism` asks the backend for deterministic kernels. Neither knows models or
schedules: they set up the process a run lives in.
"""
