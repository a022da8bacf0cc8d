"""Shared development code: the training, validation and held-out data of the shipped models."""
