"""Data: the prepared-dataset format, samplers, RoIs, flow targets and DataModules."""

from aurep.data.prepared import DatasetError, PreparedDataset, PreparedDatasetWriter

__all__ = ["DatasetError", "PreparedDataset", "PreparedDatasetWriter"]
