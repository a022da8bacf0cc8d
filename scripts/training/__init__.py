"""Training the shipped models: training, choosing between candidates by validation, a GPU phase."""
