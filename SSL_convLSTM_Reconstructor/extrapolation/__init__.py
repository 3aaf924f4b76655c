"""Physics extrapolation of object masks: no training, numpy only, every number from a fit file.

tracking (objects through the masks) -> motion (each object's state at the last input frame)
-> collisions (all objects moved together) -> painting (shapes where they land); `params`
holds the parameters, `fitting` finds them on labelled videos, `predictor` chains the steps.
"""
from SSL_convLSTM_Reconstructor.extrapolation.params import (FILE_NAME, FIT_COMMAND, ExtrapolationParams,
                                                             load_params, params_record)
from SSL_convLSTM_Reconstructor.extrapolation.predictor import HORIZON, extrapolate_mask, extrapolate_masks

__all__ = ["FILE_NAME", "FIT_COMMAND", "HORIZON", "ExtrapolationParams", "extrapolate_mask", "extrapolate_masks",
           "load_params", "params_record"]
