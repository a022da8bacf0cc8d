"""Shipped GAMA-IR models: ``<name>.safetensors`` weights plus a ``<name>.json`` model card each."""
