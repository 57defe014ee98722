"""Model families by name.

A family is one module: a ``Params`` class (its hyperparameters, validated before
TensorFlow starts) and a builder registered with ``MODELS.register(Params, ...)``. Every
builder has the same signature, ``build(spec, *, l1, l2, dropout, **hyperparameters)``,
and returns an uncompiled ``keras.Model`` whose output already fits ``spec.task``
(see :mod:`trainer.models.head`), so the engine never branches on the family.

``register`` info keys:
  regularization: which of l1, l2, dropout the family applies (others are config errors)
  tasks: which dataset tasks it can learn
  inputs: which input kinds it accepts: "vector" (features,), "sequence" (steps, features),
      "image" (height, width, channels); default all (see :mod:`trainer.models.inputs`)
  describe: optional ``(model) -> dict`` of learned values worth reporting
  compile, targets, evaluate, logged, callbacks: optional hooks replacing the supervised
      defaults in :mod:`trainer.models.supervised` (generative families use them)
  checks: optional ``(cfg) -> [(key path, message), ...]`` validation rules of the family,
      run with the schema's own cross-section checks (no TensorFlow)
  custom_objects_module: the module defining the family's registered Keras classes; import
      it before ``keras.saving.load_model`` reads the family's ``model.keras``
"""

from __future__ import annotations

from typing import Literal

from trainer.core.registry import Registry

MODELS = Registry("model", "trainer.models")

# Keras activation names (checked against keras.activations by the tests), listed here so
# that a misspelt activation fails validation before TensorFlow is imported.
Activation = Literal[
    "celu", "elu", "exponential", "gelu", "hard_sigmoid", "hard_silu", "hard_swish",
    "hard_tanh", "leaky_relu", "linear", "log_sigmoid", "mish", "relu", "relu6", "selu",
    "sigmoid", "silu", "softplus", "softsign", "sparse_plus", "squareplus", "swish", "tanh",
    "tanh_shrink",
]  # fmt: skip


def hook(name: str, family: str):
    """The family's ``name`` hook, or the supervised default (:mod:`trainer.models.supervised`)."""
    from trainer.models import supervised

    return MODELS.get(family).info.get(name) or getattr(supervised, name)
