"""Hyperparameter sweeps: W&B sweep files (configs/sweeps) expanded and run locally."""
