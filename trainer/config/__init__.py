"""The validated config: the schema over every registered component, cross-section checks, YAML.

Sits above the component packages (datasets, models, optimizers), whose ``Params`` it
unions, and below everything that runs: nothing here imports TensorFlow or Keras."""
