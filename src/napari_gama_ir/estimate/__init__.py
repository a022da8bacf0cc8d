"""Estimates from noisy data alone: the noise model (:mod:`.noise`), whether neighbouring pixels share noise
(:mod:`.correlation`) and the quality of a restoration (:mod:`.quality`)."""
