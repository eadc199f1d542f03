"""A one-batch probe of a built task: the forward pass and loss work before the sweep starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lrfind.assembly.imports import exit_error
from lrfind.assembly.losses import describe_shape
from lrfind.assembly.task import BuiltTask
from lrfind.data.batches import CollateError, move_to_device, split_batch
from lrfind.data.model_outputs import (
    call_model,
    call_model_on_batch,
    check_loss,
    loss_input,
    model_loss,
)
from lrfind.errors import DataError, LrfindError, SweepError
from lrfind.format import first_line, raised_at


def _generators(loader: Any) -> list[torch.Generator]:
    found: list[torch.Generator] = []
    for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(g is not generator for g in found):
            found.append(generator)
    return found


def _forward_loss(task: BuiltTask, batch: Any) -> torch.Tensor:
    model_name = task.description.get("model", "model")
    loss_name = task.description.get("loss", "loss")
    if task.step_fn is not None:
        try:
            loss = task.step_fn(task.model, batch)
        except LrfindError:
            raise
        except Exception as error:
            raise SweepError(
                f"step {loss_name.removeprefix('step:')!r} failed on the first batch "
                f"({describe_shape(batch)}): {type(error).__name__}: "
                f"{first_line(error)}{raised_at(error)}"
            ) from error
        check_loss(loss, f"step {loss_name.removeprefix('step:')!r}")
        return loss
    assert task.loss_fn is not None
    if isinstance(task.loss_fn, str):
        return _model_loss(task, batch, model_name)
    inputs, targets = split_batch(batch, task.inputs_key, task.targets_key)
    if (
        isinstance(inputs, torch.Tensor)
        and inputs.is_floating_point()
        and not torch.isfinite(inputs).all()
    ):
        raise DataError("data: the first training batch has NaN or inf inputs; clean the data")
    try:
        outputs = call_model(task.model, inputs)
    except LrfindError:
        raise
    except Exception as error:
        raise SweepError(
            f"model '{model_name}' does not fit the data: the first batch has inputs of "
            f"{describe_shape(inputs)} and the model raised {type(error).__name__}: "
            f"{first_line(error)} (check model.args or data.args)"
        ) from error
    if outputs is None or isinstance(outputs, (bool, int, float)):
        raise SweepError(
            f"model '{model_name}': forward returned {outputs!r} ({type(outputs).__name__}), "
            "not a tensor: is a `return` missing at the end of forward?"
        )
    read = loss_input(outputs, task.output_key)
    try:
        loss = task.loss_fn(read, targets)
    except LrfindError:
        raise
    except Exception as error:
        raise SweepError(
            f"loss '{loss_name}' failed on model outputs of {describe_shape(read)} and targets of "
            f"{describe_shape(targets)}: {type(error).__name__}: {first_line(error)} "
            f"{_loss_hint(outputs, read)}"
        ) from error
    check_loss(loss, f"loss '{loss_name}'")
    return loss


def _loss_hint(outputs: Any, read: Any) -> str:
    """What to check when a loss fails: the output it read, or the model's output size."""
    if read is outputs and not isinstance(outputs, torch.Tensor):
        return (
            f"(the model returns a {type(outputs).__name__}: set model.output_key to the output "
            "the loss should read, or use loss: model for the model's own loss)"
        )
    return "(check loss and the model's output size, model.args.out_features)"


def _model_loss(task: BuiltTask, batch: Any, model_name: str) -> torch.Tensor:
    """``loss: model``: the whole batch goes to the model, which returns its own loss."""
    try:
        outputs = call_model_on_batch(task.model, batch)
    except LrfindError:
        raise
    except Exception as error:
        how = "model(batch)"
        if isinstance(batch, Mapping):
            how = "model(**batch)"
        elif isinstance(batch, (tuple, list)):
            how = "model(*batch)"
        raise SweepError(
            f"loss: model: model '{model_name}' failed on the first batch "
            f"({describe_shape(batch)}), "
            f"called as {how}: {type(error).__name__}: {first_line(error)}{raised_at(error)}"
        ) from error
    loss = model_loss(outputs)
    check_loss(loss, f"model '{model_name}' (loss: model)")
    return loss


def probe_task(task: BuiltTask, device: torch.device) -> None:
    """Run one forward (and loss) on the first training batch, without a trace.

    Runs in training mode under ``torch.no_grad``; the model's state (BatchNorm statistics
    included), torch's RNG and the loader's shuffling generators are restored afterwards, so the
    sweep sees exactly what it would have seen without the probe.

    Raises:
        DataError: the loader yields nothing or fails, the inputs hold NaN/inf, or the loss is
            NaN/inf (at the initial weights no learning rate can be the cause; later batches
            are the sweep's to check).
        SweepError: the model does not fit the data, the loss fails or is not a floating
            point scalar, or ``loss: model`` finds no loss in the model's outputs (each message
            names the config keys to check).
    """
    saved_model = {k: v.detach().clone() for k, v in task.model.state_dict().items()}
    saved_rng = torch.get_rng_state()
    saved_cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    saved_generators = [(g, g.get_state()) for g in _generators(task.train_loader)]
    try:
        try:
            batch = next(iter(task.train_loader))
        except StopIteration:
            raise DataError("data: the training data yields no batches") from None
        except LrfindError:
            raise
        except CollateError as error:
            raise DataError(
                f"data.collate: the collate function raised {error.reason()} reading the "
                "first training batch"
            ) from error
        except Exception as error:
            raise DataError(
                f"data: reading the first training batch failed: {type(error).__name__}: "
                f"{first_line(error)}{raised_at(error)}"
            ) from error
        batch = move_to_device(batch, device)
        with torch.no_grad():
            loss = _forward_loss(task, batch)
        if not bool(torch.isfinite(loss.detach()).all()):
            raise DataError(
                "data: the loss is NaN/inf on the first training batch at the initial weights, "
                "so no learning rate causes it: check that batch for NaN/inf inputs or targets, "
                "and the model and loss for NaN outputs"
            )
    except SystemExit as error:
        raise exit_error(error, "the first batch (data, model, loss or step)") from error
    finally:
        task.model.load_state_dict(saved_model)
        torch.set_rng_state(saved_rng)
        if saved_cuda is not None:
            torch.cuda.set_rng_state_all(saved_cuda)
        for generator, state in saved_generators:
            generator.set_state(state)
