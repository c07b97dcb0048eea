"""Recording runs: the MLflow tracker, the MLflow UI launcher and the run record (``models/run.json``, epochs.tsv).

May use every other folder; none of them imports it.
"""
