"""Estimates from noisy data alone: the noise model (:mod:`.noise`) and the quality of a restoration (:mod:`.quality`)."""
