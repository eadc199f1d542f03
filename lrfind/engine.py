"""The range-test loop: LR ladder, forward/backward/step, smoothing, divergence stop, restore.

One optimizer step is: set the LR on every param group, run ``accumulation_steps`` micro-batches
(forward under autocast, backward of loss/K, DDP gradient sync only on the last), optional
unscale + gradient clipping, ``optimizer.step()`` (through a GradScaler under fp16). The recorded
loss of a step is the mean of its K micro-batch losses, measured before the step's update.

Losses stay on the device. On CPU in one process a loss is already in host memory and is read
directly, every step. Elsewhere the host reads them a chunk of ``check_every`` steps at a time
(default 8 on accelerators): the chunk's losses and this process's stop request are stacked
into one tensor, all-reduced (mean) under torch.distributed, and copied to pinned host memory
without blocking. On CUDA chunk *m* is inspected only once chunk *m+1* has been queued, so the
host never waits on the step it just launched.

Worst-case lag: the sweep stops at most ``2 * check_every - 1`` optimizer steps after the first
divergent (or non-finite) step on CUDA, at most ``check_every - 1`` steps after it on CPU and
MPS (0 on CPU with the default ``check_every`` of 1). The extra steps only cost time: the
history is cut at the first divergent step, so it is the same whatever ``check_every`` is, and
the model is restored afterwards. Under torch.distributed every rank reads the same all-reduced
chunk at the same step (chunk boundaries depend on the step count alone), so every rank takes
the same decision at the same step, calls the same collectives in the same order, and stops
together; a stop request raised on any rank (SIGINT/SIGTERM) stops all of them at the next
chunk boundary.

fp16: GradScaler skips a step whose scaled gradients overflow and halves its scale. Skipped
steps keep their recorded loss (a real forward pass) but their LR was never applied. A run of
``FP16_OVERFLOW_STREAK`` consecutive skips after the first applied step means the gradients
are blowing up: the weights stop moving and the loss would look flat, hiding the divergence. The
sweep therefore stops there (reason ``non_finite``, with a note) and the history is cut at the
first skipped step of the run. GradScaler reads its overflow flag on the host, so fp16 costs one
device synchronisation per step; bf16 and fp32 cost none.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from lrfind.batches import BatchStream, batch_size_of, move_to_device, split_batch
from lrfind.errors import DataError, SweepError
from lrfind.results import History, StopReason, Trial
from lrfind.schedule import SweepMode, lr_at, lr_ladder, set_lr

LossFn = Callable[[Any, Any], torch.Tensor]
StepFn = Callable[[torch.nn.Module, Any], torch.Tensor]
ComputeLoss = Callable[[torch.nn.Module, Any], torch.Tensor]
Reducer = Callable[[torch.Tensor], torch.Tensor]

PRECISION_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

#: Consecutive fp16 steps skipped by GradScaler (after one was applied) that stop the sweep.
FP16_OVERFLOW_STREAK = 5
#: Skipped fp16 steps before any step was applied that stop the sweep (the scale has then
#: dropped from 2**16 to 2**-8: the gradients are not finite, not merely large).
FP16_MAX_INITIAL_SKIPS = 24


@dataclass(frozen=True)
class SweepOptions:
    """How the sweep runs (the engine's own view of ``sweep:`` in the config)."""

    start_lr: float = 1e-7
    end_lr: float = 10.0
    steps: int = 100
    mode: SweepMode = "exp"
    smoothing: float = 0.98
    diverge_factor: float = 4.0
    accumulation_steps: int = 1
    precision: str = "fp32"
    grad_clip: float | None = None
    check_every: int | None = None

    def __post_init__(self) -> None:
        if self.steps < 2:
            raise ValueError(f"steps must be at least 2, got {self.steps}")
        if not (0 < self.start_lr < self.end_lr < math.inf):
            raise ValueError("need 0 < start_lr < end_lr, both finite")
        if not 0 <= self.smoothing < 1:
            raise ValueError("smoothing must be in [0, 1)")
        if not 1 < self.diverge_factor < math.inf:
            raise ValueError("diverge_factor must be above 1 and finite")
        if self.accumulation_steps < 1:
            raise ValueError("accumulation_steps must be at least 1")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"unknown precision {self.precision!r}")
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise ValueError("grad_clip must be positive and finite")
        if self.check_every is not None and self.check_every < 1:
            raise ValueError("check_every must be at least 1")

    def lr_for(self, step: int) -> float:
        """Return the LR of optimizer step ``step``."""
        return lr_at(step, self.steps, self.start_lr, self.end_lr, self.mode)


@dataclass(frozen=True)
class StepEvent:
    """Progress report for one recorded step."""

    step: int
    steps: int
    lr: float
    loss: float
    smoothed_loss: float


@dataclass(frozen=True)
class SweepOutcome:
    """What ``run_sweep`` returns: the history plus notes worth telling the user."""

    history: History
    notes: tuple[str, ...] = ()


class StopFlag:
    """Set by a signal handler (or any caller) to stop the sweep at the end of the current step.

    ``raised`` says this process was asked. ``requested`` is what loops act on: in one process
    it is ``raised``; once an engine loop has run under torch.distributed (``shared``), it only
    turns True where every rank learns of it at once (the engine all-reduces each rank's request
    with its losses), so every rank breaks out of the same step and skips the same trials.
    """

    def __init__(self) -> None:
        self.raised = False
        self.reason = ""
        self.shared = False
        self._agreed = False

    @property
    def requested(self) -> bool:
        """True when the loops should stop (agreed by every rank in a multi-process run)."""
        return self._agreed if self.shared else self.raised

    def request(self, reason: str = "interrupted") -> None:
        """Ask the running loop to stop after the current step."""
        self.raised = True
        self.reason = self.reason or reason

    def share(self) -> None:
        """Mark the flag as used by every rank of a process group (called by the engine)."""
        self.shared = True

    def agree(self, any_rank_asked: bool) -> None:
        """Record the all-reduced decision: some rank asked to stop (called by the engine)."""
        if any_rank_asked:
            self._agreed = True
            self.reason = self.reason or "interrupted"


@dataclass
class StateSnapshot:
    """Copies of everything a sweep changes, taken before it starts."""

    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] | None
    numpy_rng: Any
    python_rng: Any
    generator_states: list[tuple[torch.Generator, torch.Tensor]] = field(default_factory=list)
    #: (sampler, epoch, seed) of each DistributedSampler-like sampler: its data order.
    sampler_states: list[tuple[Any, int, Any]] = field(default_factory=list)


def _loader_generators(loader: Iterable[Any]) -> list[torch.Generator]:
    found: list[torch.Generator] = []
    for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(g is not generator for g in found):
            found.append(generator)
    inner = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
    generator = getattr(inner, "generator", None)
    if isinstance(generator, torch.Generator) and all(g is not generator for g in found):
        found.append(generator)
    return found


def _epoch_samplers(loader: Iterable[Any]) -> list[Any]:
    """Samplers whose order is set by ``set_epoch`` (DistributedSampler and look-alikes)."""
    sampler = getattr(loader, "sampler", None)
    if callable(getattr(sampler, "set_epoch", None)) and isinstance(
        getattr(sampler, "epoch", None), int
    ):
        return [sampler]
    return []


def snapshot_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, loaders: Sequence[Any] = ()
) -> StateSnapshot:
    """Return an exact copy of the model, optimizer, RNG and data-order state (kept on the CPU)."""
    model_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    generators: list[tuple[torch.Generator, torch.Tensor]] = []
    samplers: list[tuple[Any, int, Any]] = []
    for loader in loaders:
        generators.extend((g, g.get_state()) for g in _loader_generators(loader))
        samplers.extend((s, s.epoch, getattr(s, "seed", None)) for s in _epoch_samplers(loader))
    return StateSnapshot(
        model_state=model_state,
        optimizer_state=copy.deepcopy(optimizer.state_dict()),
        torch_rng=torch.get_rng_state(),
        cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        numpy_rng=np.random.get_state(),
        python_rng=random.getstate(),
        generator_states=generators,
        sampler_states=samplers,
    )


def restore_state(
    snapshot: StateSnapshot, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> None:
    """Put the model, optimizer, RNGs and data order back exactly as they were at the snapshot."""
    with torch.no_grad():
        current = model.state_dict()
        for key, saved in snapshot.model_state.items():
            current[key].copy_(saved)
    optimizer.load_state_dict(copy.deepcopy(snapshot.optimizer_state))
    optimizer.zero_grad(set_to_none=True)
    torch.set_rng_state(snapshot.torch_rng)
    if snapshot.cuda_rng is not None:
        torch.cuda.set_rng_state_all(snapshot.cuda_rng)
    np.random.set_state(snapshot.numpy_rng)
    random.setstate(snapshot.python_rng)
    for generator, state in snapshot.generator_states:
        generator.set_state(state)
    for sampler, epoch, seed in snapshot.sampler_states:
        if seed is not None:
            sampler.seed = seed
        sampler.set_epoch(epoch)


def make_compute_loss(
    loss_fn: LossFn | None,
    step_fn: StepFn | None = None,
    inputs_key: str | None = None,
    targets_key: str | None = None,
) -> ComputeLoss:
    """Return ``f(model, batch) -> loss``: ``step_fn`` as is, or forward + ``loss_fn``.

    Raises:
        ValueError: neither or both of loss_fn and step_fn are given.
    """
    if (loss_fn is None) == (step_fn is None):
        raise ValueError("give exactly one of loss_fn and step_fn")
    if step_fn is not None:
        return step_fn

    assert loss_fn is not None

    def compute(model: torch.nn.Module, batch: Any) -> torch.Tensor:
        # The usual (inputs, targets) pair skips split_batch's checks: this runs every step.
        if (type(batch) is tuple or type(batch) is list) and len(batch) == 2:
            inputs, targets = batch
        else:
            inputs, targets = split_batch(batch, inputs_key, targets_key)
        if isinstance(inputs, dict):
            outputs = model(**inputs)
        else:
            outputs = model(inputs)
        return loss_fn(outputs, targets)

    return compute


def _check_scalar(loss: Any) -> None:
    if not isinstance(loss, torch.Tensor):
        raise SweepError(f"the loss must be a tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise SweepError(
            f"the loss returned a tensor of shape {tuple(loss.shape)}, not a scalar; "
            "reduce it (e.g. reduction='mean')"
        )
    if not loss.requires_grad:
        raise SweepError(
            "the loss does not depend on any trainable parameter (no gradient); "
            "check requires_grad and that the loss uses the model's output"
        )


def _trainable(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]


def _as_recorded(loss: torch.Tensor) -> torch.Tensor:
    """The loss as a detached float32 0-d tensor (what the loss reader stacks)."""
    value = loss.detach()
    if value.dim() != 0:
        value = value.reshape(())
    if value.dtype != torch.float32:
        value = value.float()
    return value


class _Stepper:
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
        self.params = _trainable(optimizer)
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
            _check_scalar(loss)
            self.checked = True
        scaled = loss if self.accumulation == 1 else loss / self.accumulation
        if self.scaler is not None:
            scaled = self.scaler.scale(scaled)
        scaled.backward()
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


class _Chunk(NamedTuple):
    """Losses of steps [start, start + len(values)) and whether any rank asked to stop."""

    start: int
    values: list[float]
    stop_asked: bool


class _LossReader:
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

    def collect(self) -> _Chunk:
        """Wait for the queued chunk; return its losses and whether any rank asked to stop."""
        assert self.pending is not None
        start, data, event = self.pending
        self.pending = None
        if event is not None:
            event.synchronize()
        values = data if isinstance(data, list) else data.tolist()
        return _Chunk(start, values[:-1], values[-1] > 0)


class _Smoother:
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


class _OverflowWatch:
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


def divergence_threshold(best: float, first: float, factor: float) -> float:
    """Return the smoothed loss above which the sweep counts as diverged.

    ``factor * best`` for a positive best loss; for a best loss <= 0 (losses that can go
    negative), ``best + (factor - 1) * max(|best|, |first - best|)``.
    """
    if best > 0:
        return factor * best
    scale = max(abs(best), abs(first - best))
    return best + (factor - 1) * scale if scale > 0 else math.inf


def _inspects_one_chunk_late(device: torch.device) -> bool:
    """On CUDA chunk m is inspected once chunk m+1 is queued, so the host never waits on it."""
    return device.type == "cuda"


def default_check_every(device: torch.device) -> int:
    """Steps between host reads of the loss: every step on CPU, every 8 on accelerators."""
    return 1 if device.type == "cpu" else 8


def _first_step_error(error: RuntimeError) -> SweepError:
    first_line = str(error).strip().splitlines()[0] if str(error) else "error"
    return SweepError(f"the first training step failed: {first_line}")


def _take_step(stepper: _Stepper, stream: Iterator[Any], lr: float, step: int) -> torch.Tensor:
    """One optimizer step; a RuntimeError on the very first one is a model/data mismatch."""
    try:
        return stepper.step(stream, lr)
    except RuntimeError as error:
        if step == 0:
            raise _first_step_error(error) from error
        raise


def run_sweep(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    compute_loss: ComputeLoss,
    train_loader: Iterable[Any],
    options: SweepOptions,
    device: torch.device,
    *,
    reduce: Reducer | None = None,
    progress: Callable[[StepEvent], None] | None = None,
    stop: StopFlag | None = None,
) -> SweepOutcome:
    """Run the LR sweep (without restoring state: see ``range_test`` for the full contract).

    Returns the history, cut at the first diverged or non-finite step (or the first step of a
    run of fp16 overflows), or at the step where a stop was requested. ``reduce`` (the mean
    all-reduce under torch.distributed) is applied to each chunk of losses.

    Raises:
        SweepError: no trainable parameters, a non-scalar or gradient-free loss, or a model
            that fails on the data.
        DataError: the loader yields no batches.
    """
    if not _trainable(optimizer):
        raise SweepError("the optimizer has no trainable parameters (all have requires_grad=False)")
    model.train()
    stepper = _Stepper(model, optimizer, compute_loss, device, options)
    check_every = options.check_every or default_check_every(device)
    reader = _LossReader(check_every, device, reduce)
    lagged = _inspects_one_chunk_late(device)
    stream = BatchStream(train_loader)
    smoother = _Smoother(options.smoothing)
    stop = stop or StopFlag()
    if reduce is not None:
        stop.share()
    ladder = lr_ladder(options.steps, options.start_lr, options.end_lr, options.mode)
    fp16 = options.precision == "fp16"
    overflow = _OverflowWatch()
    skipped: list[bool] = []

    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stop_reason: StopReason = "completed"
    overflow_from: int | None = None
    best = math.inf
    first_smoothed: float | None = None

    def inspect(chunk: _Chunk) -> bool:
        nonlocal best, first_smoothed, stop_reason, overflow_from
        for offset, loss in enumerate(chunk.values):
            step = chunk.start + offset
            lr = ladder[step]
            value = smoother.update(loss) if math.isfinite(loss) else loss
            lrs.append(lr)
            losses.append(loss)
            smoothed.append(value)
            if progress is not None:
                progress(StepEvent(step, options.steps, lr, loss, value))
            if not math.isfinite(loss):
                stop_reason = "non_finite"
                return True
            first_smoothed = value if first_smoothed is None else first_smoothed
            best = min(best, value)
            if value > divergence_threshold(best, first_smoothed, options.diverge_factor):
                stop_reason = "diverged"
                return True
            if fp16:
                streak_start = overflow.update(step, skipped[step])
                if streak_start is not None:
                    # Past the streak's first step the weights no longer moved: cut there.
                    keep = streak_start + 1 if overflow.applied_any else len(lrs)
                    del lrs[keep:], losses[keep:], smoothed[keep:]
                    overflow_from = streak_start
                    stop_reason = "non_finite"
                    return True
        stop.agree(chunk.stop_asked)
        if chunk.stop_asked:
            stop_reason = "interrupted"
            return True
        return False

    chunk_start = 0
    try:
        for step in range(options.steps):
            reader.record(_take_step(stepper, stream, ladder[step], step))
            if fp16:
                skipped.append(stepper.skipped)
            end = step + 1
            # Chunk boundaries depend on the step count alone, so every rank reduces together.
            if end - chunk_start < check_every and end < options.steps:
                continue
            if reader.pending is not None and inspect(reader.collect()):
                break
            reader.launch(chunk_start, stop.raised)
            chunk_start = end
            if (not lagged or end == options.steps) and inspect(reader.collect()):
                break
    finally:
        optimizer.zero_grad(set_to_none=True)

    notes: list[str] = []
    if fp16:
        notes.extend(_fp16_notes(overflow, overflow_from, ladder))
    if stop_reason == "non_finite" and overflow_from is None:
        notes.extend(_non_finite_notes(optimizer, options, len(losses)))
    history = History(
        lrs=tuple(lrs),
        losses=tuple(losses),
        smoothed_losses=tuple(smoothed),
        stop_reason=stop_reason,
    )
    return SweepOutcome(history=history, notes=tuple(notes))


def _fp16_notes(
    overflow: _OverflowWatch, overflow_from: int | None, ladder: Sequence[float]
) -> list[str]:
    if overflow_from is not None and overflow.applied_any:
        return [
            f"fp16 gradients overflowed on {FP16_OVERFLOW_STREAK} consecutive steps from step "
            f"{overflow_from} (lr {ladder[overflow_from]:.3g}): GradScaler skipped them, so the "
            "weights stopped moving, and the history ends at that step (try bf16 or fp32)"
        ]
    if overflow_from is not None:
        return [
            f"fp16 gradients overflowed on each of the first {FP16_MAX_INITIAL_SKIPS} steps: "
            "no step was applied (the gradients are NaN/inf or too large for fp16; "
            "try bf16 or fp32)"
        ]
    first_applied = next((i for i, step in enumerate(overflow.skipped_steps) if step != i), None)
    late = overflow.skipped_steps[first_applied:] if first_applied is not None else []
    if late:
        shown = ", ".join(str(step) for step in late[:5]) + (", ..." if len(late) > 5 else "")
        return [
            f"fp16: GradScaler skipped {len(late)} step(s) mid-sweep on gradient overflow "
            f"(steps {shown}); their LRs were not applied"
        ]
    return []


def _non_finite_notes(
    optimizer: torch.optim.Optimizer, options: SweepOptions, steps_done: int
) -> list[str]:
    notes = []
    params = _trainable(optimizer)
    if any(not torch.isfinite(p).all() for p in params):
        notes.append(
            f"parameters became NaN/inf by step {steps_done - 1}: the gradients were not finite"
        )
    if options.precision == "fp16":
        notes.append(
            "the loss became NaN/inf under fp16 autocast (fp16 overflows above 65504); "
            "try precision bf16 or fp32"
        )
    if steps_done == 1:
        notes.append("the loss was NaN/inf from the very first step")
    return notes


def parameters_changed(snapshot: StateSnapshot, model: torch.nn.Module) -> bool:
    """Return True when any trainable parameter differs from the snapshot."""
    for name, param in model.named_parameters():
        if not param.requires_grad or name not in snapshot.model_state:
            continue
        if not torch.equal(param.detach().cpu(), snapshot.model_state[name]):
            return True
    return False


def _without_ddp(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the model itself).

    Evaluation needs no gradient sync, and DDP's forward may run a buffer broadcast: going
    around the wrapper keeps evaluation free of collectives, so ranks with different numbers of
    validation batches cannot deadlock.
    """
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        inner: torch.nn.Module = model.module
        return inner
    return model


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    compute_loss: ComputeLoss,
    loader: Iterable[Any],
    device: torch.device,
    *,
    precision: str = "fp32",
    max_batches: int | None = None,
    reduce: Reducer | None = None,
) -> float:
    """Return the sample-weighted mean loss of ``model`` over ``loader`` (eval mode, no grad).

    Under torch.distributed (``reduce`` given) the sums are all-reduced once at the end, so the
    value is the mean over every rank's samples and the same on every rank.

    Raises:
        DataError: the loader yields no batches (on every rank).
    """
    was_training = model.training
    module = _without_ddp(model)
    module.eval()
    dtype = PRECISION_DTYPES.get(precision)
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    try:
        for index, batch in enumerate(loader):
            if max_batches is not None and index >= max_batches:
                break
            batch = move_to_device(batch, device, device.type == "cuda")
            size = batch_size_of(batch)
            context = (
                torch.autocast(device_type=device.type, dtype=dtype)
                if dtype is not None
                else contextlib.nullcontext()
            )
            with context:
                loss = compute_loss(module, batch)
            total += loss.detach().double().reshape(()) * size
            count += size
    finally:
        model.train(was_training)
    if reduce is not None:
        both = reduce(torch.stack([total, count]))
        total, count = both[0], both[1]
    samples = float(count.item())
    if samples == 0:
        raise DataError("the validation data yields no batches")
    return float(total.item()) / samples


def run_trial(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    compute_loss: ComputeLoss,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    lr: float,
    steps: int,
    snapshot: StateSnapshot,
    options: SweepOptions,
    device: torch.device,
    *,
    reduce: Reducer | None = None,
    max_val_batches: int | None = 50,
    stop: StopFlag | None = None,
) -> Trial:
    """Train ``steps`` steps at constant ``lr`` from the snapshot's weights and data order.

    Returns the trial's final train loss (mean of its last tenth of steps) and validation loss
    (None without validation data). A trial whose loss turns non-finite, exceeds
    ``diverge_factor`` times its first loss, or whose fp16 gradients keep overflowing stops and
    is marked diverged. Losses and stop requests are read (and all-reduced under
    torch.distributed) every ``check_every`` steps, so every rank stops at the same step. The
    caller restores the snapshot afterwards.
    """
    restore_state(snapshot, model, optimizer)
    model.train()
    stepper = _Stepper(model, optimizer, compute_loss, device, options)
    stream = BatchStream(train_loader)
    check_every = options.check_every or default_check_every(device)
    reader = _LossReader(check_every, device, reduce)
    stop = stop or StopFlag()
    if reduce is not None:
        stop.share()
    overflow = _OverflowWatch()
    fp16 = options.precision == "fp16"
    recorded: list[float] = []
    diverged = False
    done = 0
    chunk_start = 0
    for step in range(steps):
        reader.record(_take_step(stepper, stream, lr, step))
        done = step + 1
        if fp16 and overflow.update(step, stepper.skipped) is not None:
            diverged = True
        if done - chunk_start < check_every and done < steps and not diverged:
            continue
        reader.launch(chunk_start, stop.raised)
        chunk_start = done
        chunk = reader.collect()
        recorded.extend(chunk.values)
        stop.agree(chunk.stop_asked)
        first = recorded[0]
        if diverged or any(
            not math.isfinite(v) or (first > 0 and v > options.diverge_factor * first)
            for v in chunk.values
        ):
            diverged = True
            break
        if stop.requested:
            break
    optimizer.zero_grad(set_to_none=True)
    tail = recorded[-max(1, done // 10) :]
    train_loss = sum(tail) / len(tail) if tail else math.nan
    if diverged or not math.isfinite(train_loss):
        return Trial(lr=lr, train_loss=math.inf, val_loss=None, diverged=True, steps=done)
    val_loss = None
    if val_loader is not None:
        val_loss = evaluate(
            model,
            compute_loss,
            val_loader,
            device,
            precision=options.precision,
            max_batches=max_val_batches,
            reduce=reduce,
        )
        if not math.isfinite(val_loss):
            return Trial(lr=lr, train_loss=train_loss, val_loss=None, diverged=True, steps=done)
    return Trial(lr=lr, train_loss=train_loss, val_loss=val_loss, diverged=False, steps=done)
