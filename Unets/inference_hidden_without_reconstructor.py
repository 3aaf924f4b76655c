"""Write the hidden-set submission: the U-Net's mask of frame 10 is the answer for frame 21 (the original baseline).

A preset of Unets/inference.py (--split hidden --predictor frame10_baseline); see it for every predictor.
"""
from Unets.inference import main_for

if __name__ == "__main__":
    main_for(split="hidden", predictor="frame10_baseline")
