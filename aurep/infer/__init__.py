"""Inference: AU detection on videos and images with a trained detector."""
