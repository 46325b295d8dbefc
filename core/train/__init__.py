"""One training loop for every model (accelerate: CPU, one GPU, many GPUs / nodes), its config and presets."""
