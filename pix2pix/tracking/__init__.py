"""Recording runs: the MLflow tracker and its backlog replay, the run policy, the MLflow UI launcher and the run
record (``models/mlflow_run.json``).

May use every other folder; none of them imports it.
"""
