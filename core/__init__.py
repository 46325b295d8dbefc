"""Core package: scenes, the DenseScan annotation pipeline, datasets, models, training and evaluation."""
