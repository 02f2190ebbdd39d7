"""The activation-function search engine (after Ramachandran, Zoph & Le 2017).

Uses `workbench` (expression language, models, data, run records); `workbench` never imports
this package except where the CLI dispatches a search recipe to it.
"""
