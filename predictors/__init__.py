"""Every predictor of the mask of frame 21, registered in row order by importing its module.

To add one: write predictors/<name>.py with a `@register`ed subclass of `Predictor` (see
predictors/base.py and docs/architecture.md) and import it below. Inference (--predictor,
--compare and the flags of its files), the demo and the benchmarks pick it up from REGISTRY.
"""
# Importing a module registers its predictor: this import order is the order of rows in every table.
from predictors import frame10_baseline, reconstructor, mask_simvp, mask_extrapolation, mask_hybrid, oracle, copy_last
from predictors.base import (REGISTRY, Batch, FileFlag, Predictor, choosable, mask_predictors, references,
                             register, row_order)

BUILT_IN = (frame10_baseline, reconstructor, mask_simvp, mask_extrapolation, mask_hybrid, oracle, copy_last)

__all__ = ["BUILT_IN", "REGISTRY", "Batch", "FileFlag", "Predictor", "choosable", "mask_predictors", "references",
           "register", "row_order"]
