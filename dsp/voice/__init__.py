"""Voice transformation: pitch and formant shifting (and the anonymisation processors built on them)."""
