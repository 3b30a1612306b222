"""Runtime: devices, acceleration, image and checkpoint files, tiling."""
