"""Torch datasets and collate functions that turn scenes and annotation records into training batches."""
