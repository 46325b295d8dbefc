"""Model parts shared by Dense3D and Ross3D: sparse U-Net, pooling, 3D position embedding, vision encoder,
LLM wrapper, tokenizer and save/load."""
