"""The activation-function search engine (after Ramachandran, Zoph & Le 2017).

Uses `workbench` (expression language, models, data, run records); `workbench` never imports
this package except where the CLI dispatches a search recipe to it.

Modules: `space` (the paper's core units as token sequences and formulas), `dedup` (canonical
form, numeric probe, degenerate candidates), `strategies/` (PPO and REINFORCE controllers,
random search, regularized evolution, exhaustive enumeration), `child` (train a child network,
return validation accuracy), `executors` (inline, local process pool, Ray), `journal` (SQLite),
`engine` (the loop), `run` (wiring one unit), `task` (`task: search` recipes, top.json),
`report` (the search sections of `workbench report`).
"""
