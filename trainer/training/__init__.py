"""One training path: the engine, the epoch loop, checkpoints, fused steps, augmentation layers,
devices and distribution, tracking (TensorBoard, MLflow), and the finiteness check."""
