"""The lab: notebook workflows, the demo report and the notebook runner, built on the measurements and pictures.

Modules: :mod:`~sdlab.lab.workflows` (explore with an ancestral sampler, then refine; predictability sweeps),
:mod:`~sdlab.lab.report` (``build_report``: the flagship sampler report behind ``sdlab demo``) and
:mod:`~sdlab.lab.notebooks` (run, sync and check the notebooks: ``python -m sdlab.lab.notebooks --smoke``).
Nothing is imported here, so ``python -m sdlab.lab.notebooks`` starts without loading the other two.
"""
