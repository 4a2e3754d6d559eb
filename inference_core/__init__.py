"""Inference: the memory bank and the per-frame inference core."""
