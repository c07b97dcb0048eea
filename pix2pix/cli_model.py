"""`pix2pix export-model` and `pix2pix import-generator`: a generator file to and from other code.

Registered on the `pix2pix` command (:mod:`pix2pix.cli` imports this module); kept apart so each file stays small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pix2pix.cli import BatchnormOption, ModelOption, app, friendly_errors


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
