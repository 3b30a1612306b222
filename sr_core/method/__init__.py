"""The method: pseudo pairs, the denoiser, the ResShift diffusion, training and progressive inference."""
