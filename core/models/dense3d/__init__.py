"""Dense3D: referring and reasoning 3D segmentation (point branch, image tokens, LLM with [SEG], query
decoder)."""
