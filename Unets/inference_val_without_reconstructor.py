"""Score on the val videos: the U-Net's mask of frame 10 is the answer for frame 21 (the original baseline).

A preset of Unets/inference.py (--split val --predictor frame10_baseline); see it for every predictor.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from Unets.inference import main_for  # noqa: E402

if __name__ == "__main__":
    main_for(split="val", predictor="frame10_baseline")
