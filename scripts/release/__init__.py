"""Release tools: the README figures, the napari screenshot and the shipped samples."""
