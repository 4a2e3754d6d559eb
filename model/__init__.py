"""The IMSFR network: one definition shared by training and inference."""
