"""A stand-in for the board's ``pynq``, so that the whole board path runs off the board.

``make_fake_pynq(device)`` returns a module with what hls4ml's generated driver
(``axi_stream_driver.py``) and ``board.run_on_board`` use: ``Device.devices``, ``allocate``
(NumPy buffers) and ``Overlay``, whose ``hier_0.axi_dma_0`` has a send and a receive channel.
The receive channel's ``wait`` runs ``device`` (the C simulation) on the words the send channel
moved, as the accelerator between the two DMA channels would. Every transfer is logged.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path

import numpy as np


def make_fake_pynq(device: Callable[[np.ndarray], np.ndarray]) -> types.ModuleType:
    """A module named ``pynq``; ``device(words (batch, n_in)) -> words (batch, n_out)``."""
    module = types.ModuleType("pynq")
    module.log = []  # (channel, shape, dtype, bytes) per transfer, in call order

    class Device:
        devices = [object()]  # one board

    def allocate(shape, dtype=np.float32, **_):
        return np.zeros(shape, dtype=dtype)

    class Channel:
        def __init__(self, dma, name: str):
            self.dma, self.name, self.buffer, self.done = dma, name, None, True

        def transfer(self, buffer: np.ndarray) -> None:
            if not self.done:
                raise RuntimeError(f"{self.name}: transfer started before the last one ended")
            self.buffer, self.done = buffer, False
            module.log.append((self.name, buffer.shape, buffer.dtype, buffer.nbytes))

        def wait(self) -> None:
            if self.buffer is None:
                raise RuntimeError(f"{self.name}: wait without a transfer")
            if self.name == "recv":
                send = self.dma.sendchannel
                if send.buffer is None:
                    raise RuntimeError("recv: nothing was sent")
                if len(send.buffer) != len(self.buffer):
                    raise RuntimeError("send and receive buffers hold different batches")
                self.buffer[:] = device(np.array(send.buffer))
            self.done = True

    class Dma:
        def __init__(self):
            self.sendchannel, self.recvchannel = Channel(self, "send"), Channel(self, "recv")

    class Overlay:
        def __init__(self, bitfile_name, dtbo=None, download=True, ignore_version=False,
                     device=None):  # fmt: skip
            bitfile = Path(bitfile_name)
            if not bitfile.is_file() or not bitfile.with_suffix(".hwh").is_file():
                raise OSError(f"no bitfile with its .hwh at {bitfile}")
            self.hier_0 = types.SimpleNamespace(axi_dma_0=Dma())

    module.Device, module.allocate, module.Overlay = Device, allocate, Overlay
    return module
