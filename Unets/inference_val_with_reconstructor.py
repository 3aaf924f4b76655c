"""Score on the val videos: the ConvLSTM reconstructor predicts frame 21, the U-Net segments it.

A preset of Unets/inference.py (--split val --predictor reconstructor); see it for every predictor.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from Unets.inference import main_for  # noqa: E402

if __name__ == "__main__":
    main_for(split="val", predictor="reconstructor")
