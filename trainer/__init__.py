"""trainer: train and evaluate Keras models from validated YAML configs."""

__version__ = "0.1.0"
