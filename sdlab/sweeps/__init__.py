"""Sweeps: a grid of prompts x seeds x samplers x schedules x steps x CFG (x sampler options), run as cells into a
crash-safe results store, so a re-run computes only what is missing.

>>> from sdlab.sweeps import run_sweep, summarize
>>> table = run_sweep("data/sweeps/smoke.toml", "runs/smoke")        # or a dict / SweepConfig; executor="ray"
>>> summarize(table)                                                 # per sampler, schedule, steps: metric means
>>> # the same tidy table, images beside it: pandas.read_parquet("runs/smoke/results.parquet")

Modules, in the order a sweep uses them:

- :mod:`~sdlab.sweeps.config`: :class:`SweepConfig` and :func:`load_config` (the sweep file format, every key
  checked);
- :mod:`~sdlab.sweeps.grid`: :func:`expand`, the grid checked against the model and listed as cells;
- :mod:`~sdlab.sweeps.cells`: :class:`Cell` (a :class:`SweepRun` and what to measure; pure and picklable) and
  :func:`run_cell` (cell in, rows and uint8 images out), with the small API both executors call;
- :mod:`~sdlab.sweeps.plan`: the grid's volume limit and time estimate;
- :mod:`~sdlab.sweeps.run`: :func:`run_sweep` (the local executor, or Ray's), :func:`summarize`,
  :func:`worker_table`;
- :mod:`~sdlab.sweeps.ray`: the Ray executor (Ray itself is imported only when a Ray sweep starts);
- :mod:`~sdlab.sweeps.store`: :class:`ResultsStore`, one parquet shard per cell, images as PNG, atomic commits.

Names are read from their module on first use, so ``sdlab.sweeps.store`` (and ``sdlab.ResultsStore``) loads
without torch or the models.
"""

from __future__ import annotations

from sdlab.deprecation import lazy

# public name -> module that defines it, in teaching order
_LAZY = {
    "run_sweep": "sdlab.sweeps.run",
    "summarize": "sdlab.sweeps.run",
    "load_config": "sdlab.sweeps.config",
    "SweepConfig": "sdlab.sweeps.config",
    "expand": "sdlab.sweeps.grid",
    "Cell": "sdlab.sweeps.cells",
    "SweepRun": "sdlab.sweeps.cells",
    "CellResult": "sdlab.sweeps.cells",
    "run_cell": "sdlab.sweeps.cells",
    "worker_table": "sdlab.sweeps.run",
    "EXECUTORS": "sdlab.sweeps.run",
    "ResultsStore": "sdlab.sweeps.store",
}
_RENAMED = {"Run": "SweepRun"}  # old name -> new name (sdlab.sweep.Run), for one release

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy(__name__, _LAZY, renamed=_RENAMED)
