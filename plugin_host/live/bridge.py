"""The audio-thread block path shared by every backend: port buffers -> one preallocated buffer ->
``Chain.process`` in place -> port buffers."""

from __future__ import annotations

import numpy as np


class PortBridge:
    """Copies backend port/device buffers through the chain. Everything is allocated in ``prepare``.

    ``buf``: float32 (channels, max_block), the one buffer the chain processes in place;
    ``period``: (n, view (channels, n) of ``buf``, list of its channel rows) for the current period
    size, published as one tuple so a callback running concurrently with :meth:`set_block` sees
    either the old or the new triple.
    """

    def __init__(self, chain):
        self.chain = chain

    def prepare(self, block: int) -> None:
        c = self.chain.channels
        self.maxb = int(self.chain.max_block)
        self.buf = np.zeros((c, self.maxb), np.float32)
        self.set_block(block)

    def set_block(self, block: int) -> None:
        b = min(int(block), self.maxb)
        view = self.buf[:, :b]
        self.period = (b, view, [view[k] for k in range(view.shape[0])])
        self.block = b

    def run(self, ins, outs, n: int) -> None:
        """ins: sequence of 1-D float32 input arrays (1 or 2, len >= n); outs: 1-D outputs (1 or 2).

        Mono chain: in_1 -> chain -> every output. Stereo chain: in_k -> channel k (a single input
        feeds both channels), channel k -> out_k (a single output gets channel 0).
        """
        chain = self.chain
        c = self.buf.shape[0]
        b, view, rows = self.period
        if n == b:
            self._process_span(chain, view, rows, ins, outs, c, 0, n)
            return
        pos = 0
        while pos < n:  # a size other than the period (JACK buffer-size change, PortAudio variable blocks)
            m = min(n - pos, self.maxb)
            view = self.buf[:, :m]
            rows = [view[k] for k in range(c)]
            self._process_span(chain, view, rows, ins, outs, c, pos, m)
            pos += m

    @staticmethod
    def _process_span(chain, view, rows, ins, outs, c, pos, m):
        """Samples pos..pos+m of the port buffers: copy in to ``rows``, process ``view`` (c, m), copy out."""
        full = pos == 0 and m == len(rows[0]) and len(ins[0]) == m
        ni = len(ins)
        for k in range(c):
            src = ins[k if k < ni else 0]
            np.copyto(rows[k], src if full else src[pos : pos + m])
        chain.process(view)
        for k in range(len(outs)):
            dst = outs[k]
            np.copyto(dst if full else dst[pos : pos + m], rows[k if k < c else 0])
