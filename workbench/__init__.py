"""Activation workbench: search and evaluate activation functions.

After Ramachandran, Zoph & Le (2017), "Searching for Activation Functions". An activation is
always a spec string (a registered name or a formula) until `workbench.activations.build_activation`
turns it into a module; specs, not objects, go into recipes, records, checkpoints and reports.
"""

__version__ = "0.1.0"
