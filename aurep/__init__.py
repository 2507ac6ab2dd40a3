"""aurep: self-supervised facial action unit representations (CLP + RTATL) on PyTorch Lightning."""

__version__ = "0.1.0"
