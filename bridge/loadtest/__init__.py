"""`bridge loadtest`: a load generator and measurement harness for the bridge.

Layout (pure cores first, adapters last):

* ``stats``    percentiles and distribution summaries;
* ``probe``    the known signal each call sends (band-limited noise + a 1004 Hz tone);
* ``align``    locates the probe in the audio heard back: relay latency per frame, lost,
               out-of-order and inserted-gap accounting, the tone's SNR;
* ``procstat`` CPU and RSS of a process from ``/proc`` or a ``/metrics`` page;
* ``model``    per-call records, outcomes with reasons, the aggregated figures;
* ``report``   ``report.json`` (msgspec structs), ``plot`` ``report.png``, ``display``
               the summary table and live progress;
* ``params``, ``stack``, ``runner``: the run's parameters, the child processes it starts
               when no ``--target`` is given, and the orchestration of calls.
"""
