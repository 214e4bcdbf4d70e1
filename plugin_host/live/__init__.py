"""Live mode: a :class:`~resculpt.plugin_host.host.Chain` on a real-time audio callback.

```
JACK cycle / PortAudio callback (audio thread, realtime priority where the backend gives it)
  port buffers ─np.copyto─► preallocated float32 (channels, n) ─Chain.process (in place)─► np.copyto ─► ports
  perf_counter() around it ─► LiveStats ring (preallocated) + counters
control side (other threads): LiveSession's supervisor (status, reconnect, latency updates, young-gen gc),
  OSC server / panel / CLI: Chain.params.set, Chain.load_preset (builds stages off the audio path)
```

Modules (one concept each):
    :mod:`.stats`: :class:`LiveStats` (callback timing ring and counters), :class:`LatencyReport`,
        :func:`status_line`;
    :mod:`.bridge`: :class:`PortBridge`, the audio-thread copy in / process / copy out;
    :mod:`.backend`: the :class:`AudioBackend` protocol the session drives, :class:`LiveError`, the
        block-size limits;
    :mod:`.jack_backend`: :class:`JackBackend` and :func:`list_jack`;
    :mod:`.portaudio_backend`: :class:`PortAudioBackend` and :func:`list_portaudio`;
    :mod:`.session`: :class:`LiveSession`, start/stop and the supervisor (reconnects either backend).

Real-time discipline of the callback (what this package adds around ``Chain.process``)
    * no array allocation: the port/device buffers are copied into a buffer allocated at start
      (``np.copyto``), processed in place and copied out; numpy views of JACK port buffers are cached
      by address and rebuilt only when JACK hands a new buffer (a connection change);
    * no logging, no locks, no waiting: counters are plain attribute stores, timings go into a
      preallocated ring; everything the user sees (status line, OSC feedback, reconnects) is read
      and done by the control-side supervisor thread;
    * model inference stays inside the callback: the heaviest shipped preset (voice-enhance, ONNX
      mask) measured p99.9 38.5 % of a 256-sample period (benchmarks/results/live.md), so there is
      no double-buffered worker and no extra latency; the callback time is measured and reported so
      a stage that stops fitting shows up as overruns/xruns rather than silently;
    * garbage collection is frozen and the GIL switch interval lowered for the run (see :mod:`.session`).
    What stays outside our control and is documented rather than hidden: CPython creates small
    objects (ints, floats, views) in any Python code, and pedalboard's board call returns a fresh
    block-sized array (its API has no in-place call); these come from the small-object/malloc
    allocators, are freed by reference counting and are never GC-tracked containers.

Latency (see :class:`LatencyReport`)
    algorithmic = the chain's ``latency_samples`` (STFT window - 1, plugin-reported latency);
    buffering = JACK: capture latency of what feeds ``in_*`` + playback latency of what ``out_*``
    feeds (typically 1 period + 2 periods with a sound card; 0 between two JACK clients);
    PortAudio: the stream's reported input + output latency. Under JACK the chain latency is
    published on the ports so JACK-aware hosts compensate it; PortAudio has no such mechanism
    (report only).

The session registers its :class:`LiveStats` as ``chain.stats.extra["live"]`` so anything holding
only the chain (the OSC server) can read it. Names are listed in :meth:`LiveStats.snapshot`.
"""

from resculpt.dsp.processor import SUPPORTED_RATES as RATES

from .backend import MAX_BLOCK, MIN_BLOCK, AudioBackend, LiveError
from .bridge import PortBridge
from .jack_backend import JackBackend, default_server, list_jack
from .portaudio_backend import PortAudioBackend, list_portaudio
from .session import LiveSession
from .stats import STATUS_WINDOW, LatencyReport, LiveStats, status_line

__all__ = ["MAX_BLOCK", "MIN_BLOCK", "RATES", "STATUS_WINDOW", "AudioBackend", "JackBackend", "LatencyReport",
           "LiveError", "LiveSession", "LiveStats", "PortAudioBackend", "PortBridge", "default_server",
           "list_jack", "list_portaudio", "status_line"]
