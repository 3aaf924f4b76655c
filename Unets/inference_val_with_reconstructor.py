"""Score on the val videos: the ConvLSTM reconstructor predicts frame 21, the U-Net segments it.

A preset of Unets/inference.py (--split val --predictor reconstructor); see it for every predictor.
"""
from Unets.inference import main_for

if __name__ == "__main__":
    main_for(split="val", predictor="reconstructor")
