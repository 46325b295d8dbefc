"""The tiny Dense3D configuration the model tests share: every part present, seconds per training step."""

TINY = {
    "voxel_size": 0.1,
    "unet": {"channels": [8, 16], "blocks_per_level": 1},
    "llm": {"hidden": 32, "layers": 1, "heads": 2, "kv_heads": 1, "intermediate": 64},
    "decoder": {"in_channels": 8, "d_model": 32, "num_heads": 2, "num_layers": 1, "ffn_dim": 64},
    "image": {
        "vision": {"image_size": 28, "patch_size": 14, "hidden": 16, "layers": 1, "heads": 2},
        "out_dim": 32,
        "num_frames": 2,
    },
    "scene_tokens": 16,
    "max_new_tokens": 6,
}
