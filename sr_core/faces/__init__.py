"""Faces: the command lines (ours and the original's) and the notebook widgets, all over `sr_core.Upscaler`."""
