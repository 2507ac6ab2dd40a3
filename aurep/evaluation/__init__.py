"""Evaluation: k-fold AU detection runs (``aurep cv``) and their per-AU tables."""
