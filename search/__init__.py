"""The activation-function search engine (after Ramachandran, Zoph & Le 2017).

Uses `workbench` (expression language, models, data, run records); `workbench` never imports
this package: `task: search` reaches the workbench's runner through the `workbench.tasks` entry
point declared in pyproject.toml.

Modules: `space` (the paper's core units as token sequences and formulas), `dedup` (canonical
form, numeric probe, degenerate candidates), `strategies/` (PPO and REINFORCE controllers,
random search, regularized evolution, exhaustive enumeration), `child` (train a child network,
return validation accuracy), `executors` (inline, local process pool, Ray), `journal` (SQLite),
`engine` (the loop), `config` (the recipe's settings), `run` (wiring one unit), `ranking` (best
row per function, top.json), `task` (`task: search`: validation, planning),
`report` (the search sections of `workbench report`).
"""
