"""Voice transformation stages: pitch, formant and timbre processing for character voices and anonymization.

Each stage follows the spectral-stage or processor contract of :mod:`resculpt.dsp.stft` /
:mod:`resculpt.dsp.processor` and is registered in ``plugin_host/catalog.py``.
"""
