"""The htm domain layer: sensors, model stores, the model registry, combined data and its plots."""
