"""Plain data under everything that behaves: the config's sections and its vocabulary.

Pydantic models and name tables only: no TensorFlow, no Keras, no other trainer package
but ``core``. The component packages (datasets, models) and the schema build on it."""
