"""The `pix2pix` commands that use a generator file: translate, evaluate, export-model and import-generator.

Registered on the `pix2pix` command (:mod:`pix2pix.cli` imports this module), whose shared options and error
handling they use; kept apart so that each file stays small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from pix2pix.cli import (
    BatchnormOption,
    DeviceOption,
    DropoutOption,
    ModelOption,
    TestBatchOption,
    app,
    friendly_errors,
)
from pix2pix.console import progress_bar
from pix2pix.errors import DataError


def _inference_mode(default: Any, dropout: bool | None, batchnorm: str | None, test_batch: int | None) -> Any:
    """The test-time mode: ``default`` (an InferenceMode) with the options given on the command line."""
    from pix2pix.choices import TEST_BATCHNORM_MODES
    from pix2pix.errors import ConfigError
    from pix2pix.training.model import InferenceMode

    if batchnorm is not None and batchnorm not in TEST_BATCHNORM_MODES:
        raise ConfigError(f"--batchnorm is {batchnorm!r}; allowed: {', '.join(TEST_BATCHNORM_MODES)}")
    if test_batch is not None and test_batch < 1:
        raise ConfigError(f"--test-batch is {test_batch}; it must be at least 1")
    return InferenceMode(
        batchnorm=default.batchnorm if batchnorm is None else batchnorm,
        dropout=default.dropout if dropout is None else dropout,
        batch_size=default.batch_size if test_batch is None else test_batch,
    )


@app.command()
@friendly_errors
def translate(
    inputs: Annotated[list[Path], typer.Argument(help="Image files to translate (any size; PNG/JPEG/...).")],
    model: ModelOption = Path("models/generator.pt"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the translated PNGs (<name>.png).")] = Path("translated"),
    dropout: DropoutOption = None,
    batchnorm: BatchnormOption = None,
    test_batch: TestBatchOption = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the dropout noise (same seed → same images).")] = 0,
    inputs_are: Annotated[
        str | None, typer.Option("--inputs", help="auto | labels (masks: resized nearest) | photo (bicubic). Default: what the model file says it takes (auto for files of format 1).")
    ] = None,
    palette: Annotated[
        str | None, typer.Option(help="Palette file that paints label-map inputs. Default: the palette and void ids the model was trained with, recorded in its file (auto for files of format 1).")
    ] = None,
    full_res: Annotated[
        bool,
        typer.Option(
            "--full-res",
            help="Run at each input's own size (mirror-padded to a multiple of 2^depth, e.g. 256 for a 256 px model, and "
            "cropped back) instead of resizing to the training size and back. Helps when inputs are larger than the "
            "training size and the content is local (maps, facades, textures): no detail is lost to the resize. Does "
            "not help when the output needs the whole image's context (street scenes, faces: the receptive field no "
            "longer covers the image) or at sizes far from training, where test-time batch statistics drift.",
        ),
    ] = False,
    device: DeviceOption = "auto",
) -> None:
    """Translate your own images with a trained generator (e.g. colour masks → car photos).

    Each input is resized to the model's training size, translated, and resized back to its own size (or run at
    its own size with --full-res); outputs are PNG files named after the inputs. How inputs are read comes from the
    model file: label maps (colour masks, or id masks such as the Kaggle RGBA ones) are read like `prepare` reads
    them, painted with the palette and void ids of training and resized nearest. Unreadable inputs are listed and
    skipped (exit 1).
    """
    from pix2pix.choices import TRANSLATE_INPUTS
    from pix2pix.data.palette import palette_setting, resolve_classes
    from pix2pix.devices import pick_device
    from pix2pix.errors import ConfigError
    from pix2pix.evaluation.translate import input_reading, translate_files
    from pix2pix.training.generator_file import load_generator

    if inputs_are is not None and inputs_are not in TRANSLATE_INPUTS:
        raise ConfigError(f"--inputs is {inputs_are!r}; allowed: {', '.join(TRANSLATE_INPUTS)}")
    table = None if palette is None else resolve_classes(palette_setting(palette, "--palette"), None)
    target = pick_device(device)
    generator, model_cfg, meta = load_generator(model, target)
    mode = _inference_mode(meta["inference"], dropout, batchnorm, test_batch)
    reading = input_reading(meta["description"], inputs_are, table)
    with progress_bar("translate") as progress:
        failures = translate_files(
            generator, model_cfg.image_size, inputs, out, target,
            mode=mode, batch_size=batch_size, seed=seed, reading=reading, full_res=full_res, progress=progress,
        )
    typer.echo(f"{len(inputs) - len(failures)} of {len(inputs)} images ({meta['direction']}, {mode.describe()}) → {out}")
    for failure in failures:
        typer.secho(f"  failed {failure.path}: {failure.reason}", fg=typer.colors.RED, err=True)
    if failures:
        raise typer.Exit(1)


@app.command()
@friendly_errors
def evaluate(
    data: Annotated[Path, typer.Argument(help="Test pairs: a pairs .npy (data/splits/test.npy), or a folder/zip in any layout (label maps painted with the palette and void ids the model file records).")],
    model: ModelOption = Path("models/generator.pt"),
    num_images: Annotated[int | None, typer.Option(help="Score a seeded subset of this many pairs (0 = all; default: eval.num_images).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the subset and of the dropout noise (default: eval.seed).")] = None,
    dropout: DropoutOption = None,
    batchnorm: BatchnormOption = None,
    test_batch: TestBatchOption = None,
    inception: Annotated[Path | None, typer.Option(help="An Inception file (default: the pipeline's choice in data/inception, else the offline trunk).")] = None,
    params: Annotated[Path, typer.Option(help="Defaults come from this params file's `eval` section when it exists.")] = Path("params.yaml"),
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the metrics as JSON here.")] = None,
    device: DeviceOption = "auto",
) -> None:
    """Score any generator on any test pairs: FID, KID, IS (full network only), L1, PSNR, SSIM.

    Defaults are the pipeline's: the eval seed, number of images and test-time mode of ``params.yaml`` (run from
    the project folder), the Inception network ``fetch_inception`` chose; so on the pipeline's test split and
    generator it gives the FID of ``metrics/summary.json``. Without a params file: all pairs, seed 0, the
    generator's recorded test-time mode and the offline trunk.
    """
    import json
    import tempfile

    from pix2pix.atomic import write_json_atomic
    from pix2pix.data.prepare import PrepareConfig, prepare_pairs
    from pix2pix.data.store import PAIRS_FILE, open_pairs
    from pix2pix.devices import pick_device
    from pix2pix.evaluation.eval_set import eval_indices
    from pix2pix.evaluation.inception import IS_UNAVAILABLE, select_inception
    from pix2pix.evaluation.inception_files import RECORD_FILE, load_network_choice
    from pix2pix.evaluation.scoring import compute_reference, evaluate_generator, split_direction
    from pix2pix.training.generator_file import load_generator

    target = pick_device(device)
    generator, model_cfg, meta = load_generator(model, target)
    defaults = _pipeline_eval_defaults(params, meta["inference"])
    mode = _inference_mode(defaults["mode"], dropout, batchnorm, test_batch)
    seed = defaults["seed"] if seed is None else seed
    num_images = defaults["num_images"] if num_images is None else num_images
    with tempfile.TemporaryDirectory() as scratch:
        if data.suffix == ".npy":
            pairs = open_pairs(data)
        else:
            cfg = PrepareConfig(image_size=model_cfg.image_size, min_valid_pairs=1, **_label_painting(meta["description"]))
            prepare_pairs(data, Path(scratch) / "pairs", cfg)
            pairs = open_pairs(Path(scratch) / "pairs" / PAIRS_FILE)
        if tuple(pairs.shape[2:4]) != model_cfg.image_size:
            raise DataError(f"{data}: pairs are {pairs.shape[2]}x{pairs.shape[3]} but the model was trained at "
                            f"{model_cfg.image_size[0]}x{model_cfg.image_size[1]}; prepare them at that size")
        indices = eval_indices(len(pairs), num_images, seed)
        inputs, targets = split_direction(np.asarray(pairs[indices]), meta["direction"])
        if inception is None and (PIPELINE_INCEPTION_DIR / RECORD_FILE).is_file():
            extractor = load_network_choice(PIPELINE_INCEPTION_DIR, target)
        else:
            extractor = select_inception(inception, target)
        reference = compute_reference(extractor, targets, np.arange(len(targets)))
        metrics, _ = evaluate_generator(generator, inputs, targets, extractor, reference, target, mode, seed)
    metrics["inception"] = extractor.kind
    metrics["test_time"] = mode.describe()
    if not extractor.has_classifier:
        typer.secho(f"WARNING: {IS_UNAVAILABLE}", fg=typer.colors.YELLOW, err=True)
    typer.echo(json.dumps(metrics, indent=2))
    if out:
        write_json_atomic(out, metrics)


def _label_painting(description: dict[str, Any] | None) -> dict[str, Any]:
    """``PrepareConfig`` settings that paint label maps as in training: the palette and void ids the model file
    records (none for files of format 1 or data without label maps: prepare's defaults)."""
    if not description or description["palette"] is None:
        return {}
    return {"palette": tuple(tuple(c) for c in description["palette"]), "void_ids": tuple(description["void_ids"])}


# Where `fetch_inception` records the network the pipeline uses (relative to the project folder).
PIPELINE_INCEPTION_DIR = Path("data/inception")


def _pipeline_eval_defaults(params_path: Path, recorded_mode: Any) -> dict[str, Any]:
    """Seed, number of images and test-time mode of the params file's ``eval`` section (validated), when it
    exists; else seed 0, all images and the mode ``recorded_mode`` the generator was trained with."""
    if not params_path.is_file():
        return {"seed": 0, "num_images": 0, "mode": recorded_mode}
    import yaml

    from pix2pix.errors import ConfigError
    from pix2pix.params import validate_params

    try:
        settings = yaml.safe_load(params_path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{params_path}: not valid YAML ({error})") from error
    validate_params(settings)
    section = settings["eval"]
    mode = _inference_mode(recorded_mode, section["inference_dropout"], section["batchnorm"], section["batch_size"])
    return {"seed": section["seed"], "num_images": section["num_images"], "mode": mode}


@app.command("export-model")
@friendly_errors
def export_model(
    model: ModelOption = Path("models/generator.pt"),
    fmt: Annotated[
        str, typer.Option("--format", help="onnx (any ONNX runtime, e.g. onnxruntime) | pt2 (torch.export: torch.export.load, no code of ours).")
    ] = "onnx",
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write (replaced atomically), e.g. generator.onnx or generator.pt2.")] = Path("generator.onnx"),
    batchnorm: BatchnormOption = None,
    test_batch: Annotated[
        int | None, typer.Option(help="With --batchnorm test_batch: only 1 exports (each image's own statistics; a dynamic batch cannot group images). Default: as recorded.")
    ] = None,
) -> None:
    """Export a generator file for use without this package, dropout off, batch norm as recorded (or --batchnorm).

    The network takes `input` float32 (N, 3, H, W), RGB in [-1, 1], N dynamic, at the model's size and gives `output`
    in the same layout. The file's description (input kind, palette, class names, void ids, size, direction,
    provenance), the test-time mode and the model config travel with it: JSON strings in the ONNX metadata_props, one
    JSON object in the pt2 archive's extra file pix2pix.json.
    """
    from pix2pix.training.export import export_generator

    exported = export_generator(model, fmt, out, batchnorm, test_batch)
    size_mb = exported.path.stat().st_size / 1e6
    typer.echo(f"{fmt} ({exported.mode.describe()}) → {exported.path} ({size_mb:.1f} MB); metadata: {', '.join(exported.metadata)}")


@app.command("import-generator")
@friendly_errors
def import_generator(
    source: Annotated[Path, typer.Argument(help="A UnetGenerator state_dict saved by junyanz/pytorch-CycleGAN-and-pix2pix (latest_net_G.pth).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The generator file to write (format 2).")] = Path("generator.pt"),
    direction: Annotated[str, typer.Option(help="AtoB | BtoA: their --direction when it was trained (recorded, not used to compute).")] = "AtoB",
    inputs: Annotated[
        str, typer.Option(help="photo (their A images: any RGB image, resized bicubic, as their data loader does) | label_map (read and painted like prepare; needs --palette).")
    ] = "photo",
    palette: Annotated[str | None, typer.Option(help="Palette file (YAML/JSON/CSV of id, name, colour) of the label maps it reads or writes.")] = None,
    classes: Annotated[Path | None, typer.Option(help="classes.txt or CSV of class names.")] = None,
    void_ids: Annotated[str | None, typer.Option(help="Void class ids painted black, e.g. 11 or 11,255.")] = None,
    image_size: Annotated[str | None, typer.Option(help="Training size, 256 or HxW (default: 2^depth, 256 for unet_256, 128 for unet_128).")] = None,
    dropout: Annotated[
        bool, typer.Option("--dropout/--no-dropout", help="Trained with dropout (their default) or with their --no_dropout; also the recorded test-time default, as their test.py keeps it on.")
    ] = True,
    dropout_placement: Annotated[
        str, typer.Option(help="pytorch (theirs: decoder blocks one level out from the paper's) | paper.")
    ] = "pytorch",
    dataset: Annotated[str | None, typer.Option(help="Name recorded as the data it was trained on, e.g. facades.")] = None,
) -> None:
    """Import a generator trained with the authors' PyTorch code, so translate/evaluate/export-model can use it.

    Depth (unet_256 = 8 downsamplings, unet_128 = 7), width (ngf) and norm (batch or instance) are read from the
    file; a `module.` prefix (DataParallel/DDP) and files without num_batches_tracked (old PyTorch) are handled;
    ResNet generators and other files are refused. The recorded test-time mode is theirs without --eval: batch
    statistics of each image, dropout as --dropout. Then `pix2pix translate x.png -m generator.pt --no-dropout
    --batchnorm test_batch --test-batch 1 --inputs photo` computes what their network computes.
    """
    from pix2pix.choices import DIRECTIONS, DROPOUT_PLACEMENTS, GENERATOR_INPUT_KINDS
    from pix2pix.cli import _size_argument
    from pix2pix.data.palette import void_ids_setting
    from pix2pix.errors import ConfigError
    from pix2pix.training.checkpoint import save_atomic
    from pix2pix.training.generator_file import generator_payload
    from pix2pix.training.model import InferenceMode, count_parameters
    from pix2pix.training.reference_import import dropout_note, import_reference, reference_description

    for name, value, allowed in (("--direction", direction, DIRECTIONS), ("--inputs", inputs, GENERATOR_INPUT_KINDS),
                                 ("--dropout-placement", dropout_placement, DROPOUT_PLACEMENTS)):
        if value not in allowed:
            raise ConfigError(f"{name} is {value!r}; allowed: {', '.join(allowed)}")
    size = None if image_size is None else _size_argument(image_size)
    generator, cfg, unet = import_reference(source, size, dropout, dropout_placement)
    description = reference_description(
        input_kind=inputs, palette=palette, classes=classes, void_ids=void_ids_setting(void_ids, "--void-ids") or (),
        image_size=cfg.image_size, direction=direction, dataset=dataset,
    )
    mode = InferenceMode(batchnorm="test_batch", dropout=dropout, batch_size=1)
    save_atomic(generator_payload(generator, cfg, direction, 0, mode, description), out)
    typer.echo(
        f"unet_{2**unet.depth} ({unet.depth} downsamplings), ngf {unet.ngf}, {unet.norm} norm, "
        f"{count_parameters(generator):,} parameters, {inputs} input, {direction} → {out}"
    )
    note = dropout_note(generator, unet) if dropout else None
    if note:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW, err=True)
