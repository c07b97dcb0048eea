"""Where the stages read and write: the one place for the data-flow paths of dvc.yaml."""

from pathlib import Path

RAW_DIR, LISTS_DIR, CACHE_DIR = Path("data/raw"), Path("data/lists"), Path("data/cache")
RAW_SOURCE = RAW_DIR / "source"
PREPARED_DIR, SPLITS_DIR = Path("data/prepared"), Path("data/splits")
TRAIN_PAIRS, TEST_PAIRS = SPLITS_DIR / "train.npy", SPLITS_DIR / "test.npy"
INCEPTION_DIR, REFERENCE_FILE = Path("data/inception"), Path("data/reference/features.npz")
MODELS_DIR, METRICS_DIR = Path("models"), Path("metrics")
# train: snapshots of the scored epochs and checkpoints; evaluate: the final generator, the score cache, the MLflow record
SNAPSHOTS_DIR = MODELS_DIR / "snapshots"
GENERATOR, SCORES_DIR, RUN_RECORD = MODELS_DIR / "generator.pt", MODELS_DIR / "scores", MODELS_DIR / "mlflow_run.json"
EPOCHS_TSV, SUMMARY, FID_PLOT = METRICS_DIR / "epochs.tsv", METRICS_DIR / "summary.json", METRICS_DIR / "fid.png"
LOSSES_TSV, TIMINGS_TSV = METRICS_DIR / "losses.tsv", METRICS_DIR / "timings.tsv"
SAMPLES_DIR, MLFLOW_BACKLOG = METRICS_DIR / "samples", METRICS_DIR / "mlflow_backlog.jsonl"
NOTES = METRICS_DIR / "notes.json"
SEGMENTER_DIR = MODELS_DIR / "segmenter"
SEGMENTER_SCORES = SEGMENTER_DIR / "scores.json"
