"""The `pix2pix` command line: everything a person does by hand (the DVC stages call the same library code).

Expected failures print one red line and exit 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from pix2pix.console import progress_bar
from pix2pix.errors import Pix2PixError

app = typer.Typer(
    help="Reproducible pix2pix: prepare paired data, train, evaluate (FID/KID/IS) and translate images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
Command = TypeVar("Command", bound=Callable[..., Any])
# Options shared by the commands that run a trained generator.
ModelOption = Annotated[Path, typer.Option("--model", "-m", help="A generator.pt written by training.")]
DropoutOption = Annotated[
    bool | None, typer.Option("--dropout/--no-dropout", help="Keep dropout on at inference (the paper does; default: as trained).")
]
BatchnormOption = Annotated[
    str | None,
    typer.Option(help="Test-time batch norm: test_batch (statistics of each test batch, the paper's) | running (default: as trained)."),
]
TestBatchOption = Annotated[
    int | None, typer.Option(help="Test batch size: the batch statistics are those of this many images (default: as trained).")
]
DeviceOption = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")]


def friendly_errors(command: Command) -> Command:
    """Turn a :class:`Pix2PixError` into one red line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Pix2PixError as error:
            typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@friendly_errors
def prepare(
    source: Annotated[Path, typer.Argument(help="An archive (.zip) or folder in any supported layout.", exists=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (replaced atomically).")] = Path("data/prepared"),
    image_size: Annotated[str, typer.Option(help="Pair size: 256 or HxW, e.g. 256x512.")] = "256",
    resize_policy: Annotated[str, typer.Option(help="stretch | pad | crop")] = "stretch",
    palette: Annotated[str, typer.Option(help="auto (Cityscapes: the 19 official trainIds, labelIds mapped; else the ids found, fixed colour map) or a YAML/JSON/CSV file of id, name, colour (ids read as they are).")] = "auto",
    void_ids: Annotated[str | None, typer.Option(help="Void class ids, painted black, e.g. 11 or 11,255 (default: 255 for Cityscapes, else none).")] = None,
    classes: Annotated[str | None, typer.Option(help="classes.txt or CSV of class names (default: the dataset's own).")] = None,
    min_valid_pairs: Annotated[int, typer.Option(help="Fail if fewer pairs are valid.")] = 1,
    panel_order: Annotated[str, typer.Option(help="Dayton 4-panel order: auto | street_aerial | aerial_street")] = "auto",
    workers: Annotated[int, typer.Option(help="Processes (0 = all usable cores).")] = 0,
    max_archive_bytes: Annotated[int, typer.Option(help="Refuse archives whose files total more (bytes; zip-bomb guard).")] = 32 << 30,
) -> None:
    """Turn an archive or folder (layout detected) into a compact pair store: pairs.npy + manifest.json.

    Layouts: photo + label-map folders (images/+masks/, images/+labels/, img/+ann/, CamVid X/+Xannot/,
    Cityscapes leftImg8bit/+gtFine/, pre-split train/ test/), the seed car zip (photo|mask PNGs), Dayton
    (2-file or 4-panel), or any folder of A|B images. Prints one line per class with its pixel share.
    """
    from pix2pix.data.prepare import PrepareConfig, prepare_pairs, summary_lines

    settings = {
        "image_size": _size_argument(image_size), "resize_policy": resize_policy, "palette": palette, "classes": classes,
        "void_ids": void_ids, "min_valid_pairs": min_valid_pairs, "panel_order": panel_order,
    }
    cfg = PrepareConfig.from_settings(settings, lambda key: f"--{key.replace('_', '-')}")
    with progress_bar("prepare pairs") as progress:
        manifest = prepare_pairs(source, out, cfg, workers=workers or None, progress=progress, max_archive_bytes=max_archive_bytes)
    for line in summary_lines(manifest, out):
        typer.echo(line)


def _size_argument(text: str) -> int | list[int]:
    from pix2pix.errors import ConfigError

    parts = text.lower().split("x")
    if not all(p.strip().isdigit() for p in parts) or len(parts) not in (1, 2):
        raise ConfigError(f"--image-size is {text!r}; give 256 or HxW such as 256x512")
    numbers = [int(p) for p in parts]
    return numbers[0] if len(numbers) == 1 else numbers


@app.command()
@friendly_errors
def split(
    prepared: Annotated[Path, typer.Argument(help="A folder written by `pix2pix prepare`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (replaced atomically).")] = Path("data/splits"),
    seed: Annotated[int, typer.Option(help="Seed of the random / location split.")] = 42,
    test_fraction: Annotated[float, typer.Option(help="Share of pairs for test.")] = 0.2,
    mode: Annotated[str, typer.Option(help="auto | random | location | official (needs --train-list/--test-list)")] = "auto",
    train_list: Annotated[Path | None, typer.Option(help="Official train name list (Dayton).")] = None,
    test_list: Annotated[Path | None, typer.Option(help="Official test name list (Dayton).")] = None,
) -> None:
    """Split prepared pairs into train.npy / test.npy, deterministically."""
    from pix2pix.choices import SPLIT_MODES
    from pix2pix.data.split import SplitConfig
    from pix2pix.errors import ConfigError
    from pix2pix.data.split import read_name_list, write_split

    if mode not in SPLIT_MODES:
        raise ConfigError(f"--mode is {mode!r}; allowed: {', '.join(SPLIT_MODES)}")
    lists = None
    if train_list and test_list:
        lists = {"train": read_name_list(train_list), "test": read_name_list(test_list)}
    summary = write_split(prepared, out, SplitConfig(seed=seed, test_fraction=test_fraction, mode=mode), lists)
    typer.echo(f"{summary['mode']} split: {summary['counts']['train']} train, {summary['counts']['test']} test → {out}")


@app.command("export-pairs")
@friendly_errors
def export_pairs(
    store: Annotated[Path, typer.Argument(help="A pairs .npy file (data/prepared/pairs.npy, data/splits/test.npy).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the A|B PNGs.")] = Path("pairs_png"),
    limit: Annotated[int, typer.Option(help="Export at most this many pairs (0 = all).")] = 0,
) -> None:
    """Write stored pairs as A|B PNG images, to look at them or to use them elsewhere."""
    from PIL import Image

    from pix2pix.atomic import atomic_path
    from pix2pix.data.store import open_pairs, side_by_side

    pairs = open_pairs(store)
    count = len(pairs) if limit <= 0 else min(limit, len(pairs))
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for index in range(count):
            Image.fromarray(side_by_side(pairs[index])).save(tmp / f"{index:05d}.png")
    typer.echo(f"{count} pairs → {out}")


@app.command()
@friendly_errors
def sample(
    out: Annotated[Path, typer.Argument(help="The .zip to write.")],
    n_pairs: Annotated[int, typer.Option(help="Number of pairs.")] = 240,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives a byte-identical archive.")] = 42,
    layout: Annotated[str, typer.Option(help="seed (photo|mask PNGs) | kaggle (images/ + masks/)")] = "seed",
    workers: Annotated[
        int | None, typer.Option(help="Processes rendering scenes (default: every usable CPU, at most 8); the bytes do not depend on it.")
    ] = None,
) -> None:
    """Generate the embedded sample dataset (street scenes on real photo textures) as a car-segmentation archive."""
    from pix2pix.data.sample import default_workers, write_sample_archive

    path = write_sample_archive(out, n_pairs=n_pairs, seed=seed, layout=layout, workers=default_workers() if workers is None else workers)
    typer.echo(f"{n_pairs} pairs ({layout} layout) → {path}")


@app.command()
@friendly_errors
def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
    host: Annotated[str, typer.Option(help="Loopback address only (use an SSH tunnel to view it remotely).")] = "127.0.0.1",
) -> None:
    """Open the MLflow UI on this project's tracking store (127.0.0.1 only) and wait; Ctrl-C stops it."""
    from pix2pix.tracking.ui import check_loopback_host, start_ui, stop_ui, ui_url, wait_until_serving
    from pix2pix.tracking.tracker import tracking_uri

    check_loopback_host(host)
    store = tracking_uri()
    log_path = Path("mlflow-ui.log")
    process = start_ui(store, port, log_path, host)
    try:
        wait_until_serving(ui_url(port, host), timeout_s=60, process=process)
        typer.echo(f"MLflow UI for {store}: {ui_url(port, host)}  (log: {log_path}; Ctrl-C to stop)")
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_ui(process)


tracking_app = typer.Typer(help="MLflow tracking: send what a failed tracking store left in the backlog.", no_args_is_help=True)
app.add_typer(tracking_app, name="tracking")


@tracking_app.command("replay")
@friendly_errors
def tracking_replay(
    backlog: Annotated[Path, typer.Option(help="The backlog a failed store left (JSON lines).")] = Path("metrics/mlflow_backlog.jsonl"),
    uri: Annotated[str | None, typer.Option(help="Send to this tracking URI instead of the one each event was meant for.")] = None,
) -> None:
    """Replay the MLflow events that could not be sent (server down, database locked) into the tracking store.

    Runs whose start never reached the store are created, others continued; each run is taken out of the
    backlog once sent, so a replay that fails half-way can simply be run again. The `evaluate` stage also
    replays it at its next run.
    """
    from pix2pix.tracking.replay import replay_backlog

    if not backlog.is_file():
        typer.echo(f"{backlog}: no backlog, nothing to replay")
        return
    run_ids = replay_backlog(backlog, uri)
    typer.echo(f"replayed {len(run_ids)} run(s) from {backlog}: {', '.join(run_ids)}")


# Where the pipeline keeps its test pairs and the manifest that describes a v1 generator's input.
PIPELINE_TEST_PAIRS = Path("data/splits/test.npy")
PIPELINE_PREPARED_DIR = Path("data/prepared")


@app.command()
@friendly_errors
def demo(
    model: ModelOption = Path("models/generator.pt"),
    examples: Annotated[Path | None, typer.Option(help=f"Test pairs offered as examples (default: {PIPELINE_TEST_PAIRS} when present).")] = None,
    port: Annotated[int, typer.Option(help="TCP port (0: any free one).")] = 7860,
    host: Annotated[str, typer.Option(help="Loopback address (use an SSH tunnel to view it remotely).")] = "127.0.0.1",
    allow_remote: Annotated[bool, typer.Option(help="Allow a non-loopback --host: anyone reaching it can use the model.")] = False,
    device: DeviceOption = "auto",
) -> None:
    """Serve a page to paint a label map (or upload an image) and watch the generator's photo; Ctrl-C stops it."""
    from pix2pix.data.store import open_pairs
    from pix2pix.devices import pick_device
    from pix2pix.serving.app import build_app
    from pix2pix.serving.demo import Demo
    from pix2pix.serving.description import model_description
    from pix2pix.serving.server import allowed_hosts, bind_socket, check_demo_host, serve
    from pix2pix.tracking.ui import ui_url
    from pix2pix.training.generator_file import load_generator

    check_demo_host(host, allow_remote)
    target = pick_device(device)
    generator, model_cfg, meta = load_generator(model, target)
    description = model_description(meta, model_cfg.image_size, PIPELINE_PREPARED_DIR)
    if examples is None and PIPELINE_TEST_PAIRS.is_file():
        examples = PIPELINE_TEST_PAIRS
    pairs = open_pairs(examples) if examples else None
    app_ = build_app(Demo(generator, description, meta["inference"], target, pairs), allowed_hosts(host, allow_remote))
    sock = bind_socket(host, port)
    shown = ui_url(sock.getsockname()[1], host)
    typer.echo(f"pix2pix demo of {model} (input: {description.input_kind}, {meta['inference'].describe()}): {shown}  (Ctrl-C stops it)")
    serve(app_, sock)


# The commands that use a generator file live in their own module, which registers them on `app` when imported.
import pix2pix.cli_generator  # noqa: E402,F401


def main() -> None:
    """Entry point for `python -m pix2pix.cli`."""
    app()


if __name__ == "__main__":
    sys.exit(main())
