"""Where things live by default, so no script hard-codes a path relative to the working directory."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO_ROOT / "Data"
UNET_CHECKPOINTS = REPO_ROOT / "Unets" / "checkpoints"
RECON_CHECKPOINTS = REPO_ROOT / "SSL_convLSTM_Reconstructor" / "checkpoints"
MASK_SIMVP_CHECKPOINTS = REPO_ROOT / "SSL_convLSTM_Reconstructor" / "checkpoints_mask_simvp"
MASK_HYBRID_CHECKPOINTS = REPO_ROOT / "SSL_convLSTM_Reconstructor" / "checkpoints_mask_hybrid"
RESULTS_ROOT = REPO_ROOT / "results"
EXTRAPOLATION_FIT = REPO_ROOT / "SSL_convLSTM_Reconstructor" / "checkpoints_extrapolation"
REAL_SAMPLE = REPO_ROOT.parent / "shared" / "real_sample"    # real videos beside the checkout, when present
