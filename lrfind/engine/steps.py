"""One optimizer step and the loss readers behind it.

The stepper (autocast, accumulation, DDP no-sync, clipping, GradScaler), how a loss is computed
from a batch, reading losses off the device in lagged chunks, the EMA smoother and the fp16
overflow watch. The loop that drives them, and its timing guarantees, is in ``engine.loop``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch

from lrfind.data.batches import InputsKey, move_to_device, split_batch
from lrfind.data.model_outputs import (
    MODEL_LOSS,
    ModelLoss,
    OutputKey,
    call_model_on_batch,
    check_loss,
    loss_input,
    model_loss,
)
from lrfind.engine.ladder import set_lr
from lrfind.engine.options import (
    FP16_MAX_INITIAL_SKIPS,
    FP16_OVERFLOW_STREAK,
    PRECISION_DTYPES,
    ComputeLoss,
    LossFn,
    Reducer,
    StepFn,
    SweepOptions,
)
from lrfind.errors import LrfindError, SweepError, UserCodeError
from lrfind.format import first_line, raised_at


def make_compute_loss(
    loss_fn: LossFn | ModelLoss | None,
    step_fn: StepFn | None = None,
    inputs_key: InputsKey | None = None,
    targets_key: str | None = None,
    output_key: OutputKey | None = None,
) -> ComputeLoss:
    """Return ``f(model, batch) -> loss``: ``step_fn`` as is, the model's own loss, or a loss.

    ``loss_fn="model"`` calls the model on the whole batch (a dict as keyword arguments) and
    takes the loss it computed (``.loss``, ``["loss"]`` or a returned scalar). Any other
    ``loss_fn`` gets ``model(inputs)``, or from a non-tensor output its ``output_key`` entry
    (default: ``logits`` when there is one), and the targets.

    Raises:
        ValueError: neither or both of loss_fn and step_fn are given, or a string other than
            "model".
    """
    if (loss_fn is None) == (step_fn is None):
        raise ValueError("give exactly one of loss_fn and step_fn")
    if step_fn is not None:
        user_step: StepFn = step_fn

        def compute_step(model: torch.nn.Module, batch: Any) -> torch.Tensor:
            try:
                return user_step(model, batch)
            except LrfindError:
                raise
            except Exception as error:
                raise user_code_error("step", error) from error

        return compute_step
    if isinstance(loss_fn, str):
        if loss_fn != MODEL_LOSS:
            raise ValueError(f"loss_fn must be a callable or {MODEL_LOSS!r}, got {loss_fn!r}")

        def compute_model_loss(model: torch.nn.Module, batch: Any) -> torch.Tensor:
            try:
                outputs = call_model_on_batch(model, batch)
            except LrfindError:
                raise
            except Exception as error:
                raise user_code_error("model loss", error) from error
            return model_loss(outputs)

        return compute_model_loss

    assert loss_fn is not None  # checked above: exactly one of loss_fn and step_fn
    loss: LossFn = loss_fn

    def compute(model: torch.nn.Module, batch: Any) -> torch.Tensor:
        # The usual (inputs, targets) pair skips split_batch's checks: this runs every step.
        if (type(batch) is tuple or type(batch) is list) and len(batch) == 2:
            inputs, targets = batch
        else:
            inputs, targets = split_batch(batch, inputs_key, targets_key, library=True)
        try:
            outputs = model(**inputs) if isinstance(inputs, dict) else model(inputs)
        except LrfindError:
            raise
        except Exception as error:
            raise user_code_error("forward", error) from error
        if type(outputs) is not torch.Tensor:
            if outputs is None or isinstance(outputs, (bool, int, float)):
                raise SweepError(
                    f"the model's forward returned {outputs!r} ({type(outputs).__name__}), not "
                    "a tensor: is a `return` missing at the end of forward?"
                )
            outputs = loss_input(outputs, output_key)
        try:
            return loss(outputs, targets)
        except LrfindError:
            raise
        except Exception as error:
            failure = user_code_error("loss", error)
            if _sequence_pair(outputs, targets):
                # What the built-in names do by themselves; a user's loss gets the hint.
                failure = UserCodeError(
                    f"{failure}: (batch, time, classes) outputs {tuple(outputs.shape)} with "
                    f"(batch, time) targets {tuple(targets.shape)}: pass a loss that flattens "
                    "them, e.g. loss_fn=lambda logits, targets: "
                    "F.cross_entropy(logits.flatten(0, 1), targets.flatten())",
                    failure.component,
                )
            raise failure from error

    return compute


def _sequence_pair(outputs: Any, targets: Any) -> bool:
    """(N, T, C) outputs with (N, T) class-index targets: a sequence model's logits."""
    return (
        isinstance(outputs, torch.Tensor)
        and isinstance(targets, torch.Tensor)
        and outputs.dim() == 3
        and targets.shape == outputs.shape[:2]
        and not targets.is_floating_point()
    )


#: How a failing component is named in messages.
COMPONENT_NAMES = {
    "forward": "the model's forward",
    "loss": "the loss function",
    "model loss": "the model (computing its own loss)",
    "step": "the step function",
    "data": "the training data",
    "backward": "the backward pass",
    "optimizer step": "the optimizer's step",
}


def user_code_error(component: str, error: BaseException) -> UserCodeError:
    """A UserCodeError saying which ``component`` raised ``error``, what and where."""
    return UserCodeError(
        f"{COMPONENT_NAMES[component]} raised {type(error).__name__}: "
        f"{first_line(error)}{raised_at(error)}",
        component,
    )


def trainable_parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]


def _as_recorded(loss: torch.Tensor) -> torch.Tensor:
    """The loss as a detached float32 0-d tensor (what the loss reader stacks)."""
    value = loss.detach()
    if value.dim() != 0:
        value = value.reshape(())
    if value.dtype != torch.float32:
        value = value.float()
    return value


class Stepper:
    """Runs optimizer steps with accumulation, autocast, GradScaler and clipping.

    Kept lean: this is the per-step hot path, so everything that does not change between steps
    (DDP's ``no_sync``, the autocast dtype, the scaler) is looked up once here.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        compute_loss: ComputeLoss,
        device: torch.device,
        options: SweepOptions,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.compute_loss = compute_loss
        self.device = device
        self.accumulation = options.accumulation_steps
        self.grad_clip = options.grad_clip
        self.non_blocking = device.type == "cuda"
        self.dtype = PRECISION_DTYPES.get(options.precision)
        # A fresh scaler per sweep or trial (initial scale 2**16): every sweep and trial starts
        # from the same state, like the model and optimizer, without touching the user's state.
        self.scaler = torch.amp.GradScaler(device.type) if options.precision == "fp16" else None
        self.scale = self.scaler.get_scale() if self.scaler is not None else 1.0
        #: Whether GradScaler skipped the last step (its gradients overflowed in fp16).
        self.skipped = False
        self.params = trainable_parameters(optimizer)
        self.no_sync: Callable[[], Any] | None = getattr(model, "no_sync", None)
        self.checked = False

    def _micro_step(self, batch: Any, sync: bool) -> torch.Tensor:
        """Forward and backward one micro-batch; DDP syncs gradients only when ``sync``."""
        if sync or self.no_sync is None:
            return self._forward_backward(batch)
        with self.no_sync():
            return self._forward_backward(batch)

    def _to_device(self, batch: Any) -> Any:
        """``move_to_device``, with the usual (inputs, targets) tensor pair done inline."""
        if type(batch) is tuple and len(batch) == 2:
            inputs, targets = batch
            if type(inputs) is torch.Tensor and type(targets) is torch.Tensor:
                return (
                    inputs.to(self.device, non_blocking=self.non_blocking),
                    targets.to(self.device, non_blocking=self.non_blocking),
                )
        return move_to_device(batch, self.device, self.non_blocking)

    def _forward_backward(self, batch: Any) -> torch.Tensor:
        batch = self._to_device(batch)
        if self.dtype is None:
            loss = self.compute_loss(self.model, batch)
        else:
            with torch.autocast(device_type=self.device.type, dtype=self.dtype):
                loss = self.compute_loss(self.model, batch)
        if not self.checked:
            check_loss(loss, needs_grad=True)
            self.checked = True
        scaled = loss if self.accumulation == 1 else loss / self.accumulation
        if self.scaler is not None:
            scaled = self.scaler.scale(scaled)
        try:
            scaled.backward()
        except Exception as error:
            raise user_code_error("backward", error) from error
        return _as_recorded(loss)

    def step(self, stream: Iterator[Any], lr: float) -> torch.Tensor:
        """Run one optimizer step at ``lr``; return the mean micro-batch loss (on the device)."""
        set_lr(self.optimizer, lr)
        self.optimizer.zero_grad(set_to_none=True)
        if self.accumulation == 1:
            # _micro_step(sync=True) without the extra call: DDP syncs on the only micro-batch.
            recorded = self._forward_backward(next(stream))
        else:
            total = self._micro_step(next(stream), sync=False)
            for micro in range(1, self.accumulation):
                last = micro == self.accumulation - 1
                total = total + self._micro_step(next(stream), sync=last)
            recorded = total / self.accumulation
        if self.scaler is None:
            if self.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            self.optimizer.step()
            return recorded
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        # The scale only shrinks on an overflow (it grows after 2000 clean steps, never
        # within a sweep): comparing it is the public way to learn the step was skipped.
        scale = self.scaler.get_scale()
        self.skipped = scale < self.scale
        self.scale = scale
        return recorded


class LossChunk(NamedTuple):
    """Losses of steps [start, start + len(values)) and whether any rank asked to stop."""

    start: int
    values: list[float]
    stop_asked: bool


class LossReader:
    """Hands per-step losses (and the stop request) to the host a chunk at a time.

    CPU, one process: the loss already lives in host memory, so it is read directly (no staging
    copy, no extra op). Otherwise the chunk's losses and this rank's stop request are stacked
    into one tensor, all-reduced under torch.distributed (one collective per chunk), and on CUDA
    copied without blocking into pinned memory; ``collect`` then waits on an event for that copy
    only.
    """

    def __init__(self, check_every: int, device: torch.device, reduce: Reducer | None) -> None:
        self.direct = device.type == "cpu" and reduce is None
        self.async_copy = device.type == "cuda"
        self.reduce = reduce
        self.losses: list[torch.Tensor] = []
        # Device-resident 0/1 stop flags: stacking one is a view, not a host-to-device copy.
        self.flags = None if self.direct else torch.tensor([0.0, 1.0], device=device)
        # One pending chunk at most: it is collected before the next one is launched.
        self.host = (
            torch.empty(check_every + 1, dtype=torch.float32, pin_memory=True)
            if self.async_copy
            else None
        )
        self.pending: tuple[int, Any, Any] | None = None

    def record(self, loss: torch.Tensor) -> None:
        self.losses.append(loss)

    def launch(self, start: int, stop_requested: bool) -> None:
        """Queue the read of the losses recorded since the last launch (steps from ``start``)."""
        losses, self.losses = self.losses, []
        if self.direct:
            values = [loss.item() for loss in losses]
            self.pending = (start, [*values, 1.0 if stop_requested else 0.0], None)
            return
        assert self.flags is not None
        chunk = torch.stack([*losses, self.flags[int(stop_requested)]])
        if self.reduce is not None:
            chunk = self.reduce(chunk)
        if self.host is None:
            self.pending = (start, chunk, None)
            return
        host = self.host[: chunk.numel()]
        host.copy_(chunk, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.pending = (start, host, event)

    def collect(self) -> LossChunk:
        """Wait for the queued chunk; return its losses and whether any rank asked to stop."""
        assert self.pending is not None
        start, data, event = self.pending
        self.pending = None
        if event is not None:
            event.synchronize()
        values = data if isinstance(data, list) else data.tolist()
        return LossChunk(start, values[:-1], values[-1] > 0)


class Smoother:
    """Bias-corrected EMA, updated one loss at a time (same numbers as analysis.ema_smooth)."""

    def __init__(self, beta: float) -> None:
        self.beta = beta
        self.average = 0.0
        self.count = 0

    def update(self, loss: float) -> float:
        self.count += 1
        if self.beta == 0:
            return loss
        self.average = self.beta * self.average + (1 - self.beta) * loss
        return self.average / (1 - self.beta**self.count)


class OverflowWatch:
    """Tells, step by step, when fp16 gradient overflows mean the run is blowing up."""

    def __init__(self) -> None:
        self.applied_any = False
        self.streak_start: int | None = None
        self.streak = 0
        self.skipped_steps: list[int] = []

    def update(self, step: int, skipped: bool) -> int | None:
        """Record one step; return the first step of the streak that ends the run, if any."""
        if not skipped:
            self.applied_any = True
            self.streak, self.streak_start = 0, None
            return None
        self.skipped_steps.append(step)
        if self.streak_start is None:
            self.streak_start = step
        self.streak += 1
        limit = FP16_OVERFLOW_STREAK if self.applied_any else FP16_MAX_INITIAL_SKIPS
        return self.streak_start if self.streak >= limit else None


def inspects_one_chunk_late(device: torch.device) -> bool:
    """On CUDA chunk m is inspected once chunk m+1 is queued, so the host never waits on it."""
    return device.type == "cuda"


def default_check_every(device: torch.device) -> int:
    """Steps between host reads of the loss: every step on CPU, every 8 on accelerators."""
    return 1 if device.type == "cpu" else 8


def _first_step_error(error: Exception) -> SweepError:
    return SweepError(f"the first training step failed: {first_line(error)}")


def take_step(stepper: Stepper, stream: Iterator[Any], lr: float, step: int) -> torch.Tensor:
    """One optimizer step; a RuntimeError on the very first one is a model/data mismatch.

    Raises:
        UserCodeError: user code (forward, loss, step function, data, backward, the optimizer)
            raised on a later step.
        SweepError: the first step failed.
    """
    try:
        return stepper.step(stream, lr)
    except UserCodeError as error:
        if step == 0:
            raise _first_step_error(error) from error
        raise
    except LrfindError:
        raise
    except Exception as error:
        if step == 0 and isinstance(error, RuntimeError):
            raise _first_step_error(error) from error
        raise user_code_error("optimizer step", error) from error
