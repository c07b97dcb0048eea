"""Where the stages read and write: the one place for the data-flow paths of dvc.yaml."""

from pathlib import Path

RAW_DIR, LISTS_DIR, CACHE_DIR = Path("data/raw"), Path("data/lists"), Path("data/cache")
RAW_SOURCE = RAW_DIR / "source"
PREPARED_DIR, SPLITS_DIR = Path("data/prepared"), Path("data/splits")
TRAIN_PAIRS, TEST_PAIRS = SPLITS_DIR / "train.npy", SPLITS_DIR / "test.npy"
INCEPTION_DIR, REFERENCE_FILE = Path("data/inception"), Path("data/reference/features.npz")
MODELS_DIR, METRICS_DIR = Path("models"), Path("metrics")
CHECKPOINT, GENERATOR, RUN_RECORD = MODELS_DIR / "checkpoint.pt", MODELS_DIR / "generator.pt", MODELS_DIR / "run.json"
EPOCHS_TSV, SUMMARY, FID_PLOT = METRICS_DIR / "epochs.tsv", METRICS_DIR / "summary.json", METRICS_DIR / "fid.png"
SAMPLES_DIR, MLFLOW_BACKLOG = METRICS_DIR / "samples", METRICS_DIR / "mlflow_backlog.jsonl"
TIMINGS_TSV, NOTES = METRICS_DIR / "timings.tsv", METRICS_DIR / "notes.json"
SEGMENTER_DIR = MODELS_DIR / "segmenter"
SEGMENTER_SCORES = SEGMENTER_DIR / "scores.json"
