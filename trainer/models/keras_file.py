"""The user's own architecture: a ``.keras`` file saved from their Keras code, trained here.

``path`` names the archive (``model.save("arch.keras")``). It is opened in Keras's safe mode
and without its compile settings (the trainer compiles it with the config's optimizer, loss
and metrics), so nothing in it can run code: a ``Lambda`` layer is refused with the reason,
and so is a class Keras does not know (a custom layer defined in the user's code). The
archive's weights are where training starts from, so a model trained elsewhere is
fine-tuned; to start from scratch, save it before training it.

Before training the model is checked against the data: its input must take one sample's
shape, and its output must be the task's (``trainer.models.head``): one unit with a sigmoid
for binary labels, one unit per class with a softmax for multiclass, ``target_dim`` linear
units for regression. Each mismatch is a config error (exit 2) naming what to change.
Regularization is the architecture's own: ``regularization`` does not apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from trainer.core.errors import DataError
from trainer.core.registry import Params
from trainer.models import MODELS
from trainer.models.inputs import model_error

HEADS = {"binary": "sigmoid", "multiclass": "softmax", "regression": "linear"}


class KerasFileParams(Params):
    type: Literal["keras_file"] = "keras_file"
    path: Path = Field(
        description="A .keras archive of the architecture (model.save('arch.keras') in Keras); "
        "relative paths start from the current directory."
    )


def _checks(cfg):
    path = cfg.model.path
    if path.suffix != ".keras":
        yield (("model", "path"), f"{path} is not a .keras archive; save it with "
                                  "model.save('arch.keras')")  # fmt: skip
    elif not path.is_file():
        yield (("model", "path"), f"no file at {path}; give the path of your .keras archive")


@MODELS.register(
    KerasFileParams,
    regularization=(),
    tasks=("regression", "binary", "multiclass"),
    checks=[_checks],
)
def keras_file(spec, *, path, l1, l2, dropout):
    """Your own architecture, from a .keras file saved by your Keras code (safe mode)."""
    model = _load(Path(path))
    _check_fits(model, spec, Path(path))
    return model


def _load(path: Path):
    import keras

    from trainer.core.files import archive_problem

    found = archive_problem(path)
    if found is not None:
        hint = "save the architecture again with model.save('arch.keras')"
        raise DataError(f"model.path: {path}: {found}", hint=hint)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for what it refuses
        said = str(error)
        if "Lambda" in said or "unsafe" in said.lower():
            reason = "it holds a Lambda layer (Python code), which safe mode will not run"
            hint = "write the Lambda's computation with Keras layers, or in a config's model"
        elif "Could not locate" in said or "Unknown" in said or "not found" in said.lower():
            reason = f"it names a class Keras does not know ({said[:200]})"
            hint = ("custom classes are code, which a config cannot bring; build the model "
                    "from Keras's own layers")  # fmt: skip
        else:
            reason, hint = f"Keras cannot load it ({said[:300]})", "save it again with Keras 3"
        raise DataError(f"model.path: {path}: refused: {reason}", hint=hint) from None


def _check_fits(model, spec, path: Path) -> None:
    problems = []
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1 or len(getattr(model, "outputs", None) or []) != 1:
        problems.append(f"model.path: {path} has {len(inputs)} inputs and "
                        f"{len(model.outputs or [])} outputs; the trainer feeds one input and "
                        "learns one output")  # fmt: skip
        raise model_error("keras_file", spec, problems)
    taken = tuple(inputs[0].shape[1:])
    if len(taken) != len(spec.input_shape) or any(
        want is not None and want != have for want, have in zip(taken, spec.input_shape,
                                                                 strict=True)):  # fmt: skip
        problems.append(f"model.path: {path} takes inputs shaped {taken}, but the dataset's "
                        f"samples are shaped {tuple(spec.input_shape)}; change the model's "
                        "Input, or the dataset (image_size, color_mode)")  # fmt: skip
    units = {"binary": 1, "multiclass": spec.num_classes, "regression": spec.target_dim}
    width = model.outputs[0].shape[-1]
    if width != units[spec.task]:
        problems.append(f"model.path: {path} outputs {width} values a sample, but the "
                        f"{spec.task} task needs {units[spec.task]}"
                        + (f" (one per class: {spec.num_classes})" if spec.task == "multiclass"
                           else ""))  # fmt: skip
    activation = _final_activation(model)
    if activation is not None and activation != HEADS[spec.task]:
        problems.append(f"model.path: {path} ends in a '{activation}' activation, but the "
                        f"{spec.task} task's loss takes '{HEADS[spec.task]}' outputs; end the "
                        f"model with Dense(..., activation='{HEADS[spec.task]}')")  # fmt: skip
    if problems:
        raise model_error("keras_file", spec, problems)


def _final_activation(model) -> str | None:
    """The name of the last layer's activation, when it has one (Dense, Activation)."""
    last = model.layers[-1] if model.layers else None
    function = getattr(last, "activation", None)
    return getattr(function, "__name__", None) if function is not None else None
