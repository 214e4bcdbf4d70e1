"""The host: chain, parameters, presets, latency, CLI, OSC, live audio and DAW maps."""
