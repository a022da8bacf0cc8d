"""Development code of napari-gama-ir (not installed with the package): run its modules from the repository
root, e.g. ``python -m scripts.training.train_shipped``."""
