"""How networks run: numeric precision, memory format, ``torch.compile``, and lean inference passes.

An :class:`Engine` is what evaluation and the distillers' network passes go through. Two of its choices are
separate in kind:

* ``precision`` changes the numbers: ``fp32`` (the protocol) or ``bf16`` (autocast: convolutions and linear
  layers in bfloat16, losses and parameters in fp32). It is a config field of the evaluator and of DM/DC, so a
  bf16 run is a labelled variant with ``precision=bf16`` in its record's protocol and never mixes with fp32.
* the *path* (eager or compiled, channels_last or not) computes the same fp32 function and differs only in
  floating-point rounding. It is chosen per device by ``DDBENCH_ENGINE`` (``auto`` = the fastest path that pays
  on this device; ``eager`` = plain PyTorch, bit-identical to the loop before this module existed; ``compile``
  = always compile; default :data:`DEFAULT_PATH`) and written into each record's ``result.engine``, not into
  the protocol.

``torch.compile`` needs a working C compiler on CPU (Inductor). Where it cannot compile, the engine says so in
one log line per process and runs eager.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ddbench.errors import ConfigError

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
PATHS = ("auto", "eager", "compile")
ENV = "DDBENCH_ENGINE"
# the path without $DDBENCH_ENGINE: auto on both device types. On CUDA: compiled, vectorised ensembles. On CPU,
# measured by benchmarks/bench_engine.py (2 idle cores, MNIST ConvNet-3, E=1000 + the full test pass): auto is
# 1.24x the plain eager loop at IPC 1 and 1.28x at IPC 10, the test pass 1.37x, a DM iteration 1.10x (session 7).
# The test suite pins eager (tests/conftest.py) so its exact-value oracles stay bit-identical.
DEFAULT_PATH = {"cuda": "auto", "cpu": "auto"}

# torch.compile pays for its one-off compilation (tens of seconds cold on this CPU; seconds from Inductor's
# on-disk cache) only over enough work: below this many training images (steps x batch), auto stays eager.
COMPILE_MIN_IMAGES = 20_000
_compile_ok: bool | None = None  # probed once per process
RECOMPILE_LIMIT = 128


def engine_path(device_type: str = "cpu") -> str:
    """The path choice from ``$DDBENCH_ENGINE`` (default :data:`DEFAULT_PATH` of the device type); a bad value
    is a one-line error."""
    default = DEFAULT_PATH.get(device_type, "eager")
    value = os.environ.get(ENV, default).strip().lower() or default
    if value not in PATHS:
        raise ConfigError(f"bad {ENV}={value!r}: choose one of {', '.join(PATHS)}")
    return value


def check_precision(precision: str) -> Precision:
    if precision not in PRECISIONS:
        raise ConfigError(f"bad precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision  # type: ignore[return-value]


def compile_available() -> bool:
    """Whether torch.compile works here (probed once: a C compiler for CPU Inductor, then a tiny compile).

    When it does not, one warning line says why, and every engine of this process runs eager.
    """
    global _compile_ok
    if _compile_ok is None:
        reason = ""
        if not any(shutil.which(cc) for cc in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++")):
            reason = "no C++ compiler on PATH"
        else:
            try:
                probe = torch.compile(lambda x: torch.relu(x) * 2 + 1, dynamic=False)
                probe(torch.ones(4))
            except Exception as exc:  # noqa: BLE001 - any failure means: run eager
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
        _compile_ok = not reason
        if reason:
            log.warning("torch.compile unavailable (%s); running eager", reason)
    return _compile_ok


@dataclass(frozen=True)
class Engine:
    """Runs networks on ``device`` at ``precision`` along ``path`` (see the module docstring)."""

    device: torch.device = torch.device("cpu")
    precision: Precision = "fp32"
    path: str = "eager"

    @classmethod
    def create(cls, device: torch.device | str = "cpu", precision: str = "fp32", path: str | None = None) -> Engine:
        """An engine for ``device``; ``path`` None = ``$DDBENCH_ENGINE`` (default: :data:`DEFAULT_PATH`)."""
        device = torch.device(device)
        p = engine_path(device.type) if path is None else path
        if p not in PATHS:
            raise ConfigError(f"bad engine path {p!r}: choose one of {', '.join(PATHS)}")
        return cls(device, check_precision(precision), p)

    # ------------------------------------------------------------------------------------------ choices
    @property
    def dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.precision == "bf16" else None

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """bf16: ``torch.autocast``; fp32: nothing."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def channels_last(self, net: nn.Module, inference: bool) -> bool:
        """channels_last inputs where they pay (measured, see ``benchmarks/bench_engine.py``): on CPU for
        inference passes (the test pass, DM's real batches), not for training steps; on CUDA under bf16
        autocast (tensor cores). Never on the eager path."""
        if self.path == "eager" or not _has_conv(net):
            return False
        if self.device.type == "cuda":
            return self.precision == "bf16"
        return inference

    def will_compile(self, work_images: int) -> bool:
        """Whether a network that will see ``work_images`` training images is compiled on this path."""
        if self.path == "eager":
            return False
        if self.path == "auto" and work_images < COMPILE_MIN_IMAGES:
            return False
        return compile_available()

    def describe(self, compiled: bool, channels_last: bool) -> str:
        return " ".join([self.device.type, self.precision, "compiled" if compiled else "eager",
                         *(["channels_last"] if channels_last else [])])

    # ----------------------------------------------------------------------------------------- running
    def prepare(self, net: nn.Module, work_images: int = COMPILE_MIN_IMAGES, method: str = "forward",
                inference: bool = False) -> Prepared:
        """The network's ``method`` (``forward``, ``embed``) as this engine runs it: compiled when it pays for
        ``work_images`` images, with channels_last inputs where they pay (``inference`` = a pass without
        parameter gradients). The network itself is not changed."""
        compiled = self.will_compile(work_images)
        cl = self.channels_last(net, inference)
        fn = _compiled(method)(net) if compiled else getattr(net, method)
        return Prepared(net, fn, cl, compiled, self.describe(compiled, cl))

    def accuracy(self, net: nn.Module, images: Tensor, labels: Tensor, batch: int = 500,
                 forward: Callable[[Tensor], Tensor] | None = None,
                 on_batch: Callable[[int], None] | None = None) -> float:
        """Top-1 accuracy in percent: inference mode, autocast at bf16, one host sync at the end;
        ``on_batch(k)`` after each batch of ``k`` images (progress)."""
        was_training = net.training
        net.eval()
        fwd = forward or net
        n = labels.shape[0]
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        with torch.inference_mode(), self.autocast():
            for i in range(0, n, batch):
                x = images[i: i + batch].to(self.device, non_blocking=True)
                y = labels[i: i + batch].to(self.device, non_blocking=True)
                correct += (fwd(x).argmax(1) == y).sum()
                if on_batch is not None:
                    on_batch(int(y.shape[0]))
        net.train(was_training)
        return 100.0 * int(correct) / n


@dataclass
class Prepared:
    """A network made ready by :meth:`Engine.prepare`: call it like the chosen method."""

    net: nn.Module
    fn: Callable[[Tensor], Tensor]
    channels_last: bool
    compiled: bool
    label: str

    def __call__(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.fn(x)


def _has_conv(net: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in net.modules())


_COMPILED: dict[str, Callable[..., Tensor]] = {}


def _compiled(method: str) -> Callable[[nn.Module], Callable[[Tensor], Tensor]]:
    """One compiled function per method name, shared by every network: a new network of an architecture
    already seen reuses the compiled code (its parameters are inputs, not constants)."""
    if method not in _COMPILED:
        def call(net: nn.Module, x: Tensor) -> Tensor:
            return getattr(net, method)(x)

        # one entry per (architecture, batch shape, train/eval, grad mode, precision): more than dynamo's default 8
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
        _COMPILED[method] = torch.compile(call, dynamic=False)
    fn = _COMPILED[method]
    return lambda net: (lambda x: fn(net, x))


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Temporarily use ``n`` torch CPU threads (None = unchanged)."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
