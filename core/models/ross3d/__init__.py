"""Ross3D (REFERENCE §5): a video 3D LLM trained with cross-view and BEV reconstruction.

This package holds the reconstruction half: the frozen VAE (`vae`), its targets (`targets`), the DiT
denoiser (`denoiser`) and the losses and sampler (`reconstruction`); `train_vae` trains the shipped VAE.
"""
