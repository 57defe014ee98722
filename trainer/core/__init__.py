"""The bottom layer: exit-coded errors, the name -> component registry, atomic files and locks.

Imports nothing else of the trainer, and no TensorFlow."""
