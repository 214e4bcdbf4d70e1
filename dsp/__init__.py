"""Numbers only: streaming STFT, band maps, parameter table, non-learned processors.

No I/O, no threads. Every processor follows :class:`resculpt.dsp.processor.Processor`.
"""
