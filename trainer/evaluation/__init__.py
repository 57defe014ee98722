"""Measure and draw: metric values, plots and pictures (NumPy and matplotlib, no Keras).

The layer under the components, so a model family's evaluation hook can use it."""
