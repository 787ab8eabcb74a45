"""``mcuprof export``: the command line over :func:`bench_firmware.export.export_runtime`."""

from __future__ import annotations

from pathlib import Path

import click

from bench_firmware.boards import get_board
from bench_firmware.errors import McuprofError


@click.command(name="export")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--board", required=True, help="Target board, e.g. nucleo-f446re.")
@click.option("-o", "--output", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write (new or empty).")
@click.option("--input", "input_path",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The example's input tensor as .npy (default: the seeded random input "
                   "`mcuprof run` uses).")
@click.option("--kernels", type=click.Choice(["dsp", "ref"]), default="dsp", show_default=True,
              help="Kernel path the example uses (`make KERNELS=` overrides it).")
@click.option("--force", is_flag=True,
              help="Write into a directory that is not empty, replacing a previous export.")
def export_cmd(model: Path, board: str, out_dir: Path, input_path: Path | None, kernels: str,
               force: bool) -> None:
    """Write MODEL's plan as a C array and the runtime as a C library for BOARD, with an
    example application and a Makefile (arm-none-eabi-gcc)."""
    from bench_firmware.export import export_runtime

    target = get_board(board)
    try:
        data = model.read_bytes()
    except OSError as e:
        raise McuprofError(f"cannot read model {model}: {e.strerror}") from e
    result = export_runtime(data, target, out_dir, name=str(model), input_path=input_path,
                            kernels=kernels, force=force)
    click.echo(f"wrote {out_dir}: model {result.model_id} for {result.board}, plan "
               f"{result.plan_bytes:,} bytes, arena {result.arena_bytes:,} bytes, "
               f"{len(result.files)} files")
    click.echo(f"build it: make -C {out_dir}   (build/example.elf, build/libmcuprof.a)")
