"""``sweepcast validate FILE``: check a sweep config without starting anything.

Exit status: 0 valid, 2 invalid (every problem printed as ``FILE:LINE: path: message (got V)``
on stderr). Imports neither Ray nor torch; it does import the trainable's module to check it is
callable (a trainable that imports torch at module level pays for that, nothing else does).
"""

from __future__ import annotations

import click

EXIT_INVALID = 2


@click.command("validate")
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option(
    "--no-import",
    is_flag=True,
    help="Do not import the trainable (only check the config's own fields).",
)
def command(file: str, no_import: bool) -> None:
    """Check the sweep config FILE; exit 0 if valid, 2 if not (problems on stderr)."""
    from orchestrator.config import ConfigError, load_config

    try:
        cfg = load_config(file, check_import=not no_import)
    except ConfigError as e:
        for line in e.lines():
            click.echo(line, err=True)
        n = len(e.problems)
        click.echo(f"{file}: invalid ({n} problem{'s' if n != 1 else ''})", err=True)
        raise SystemExit(EXIT_INVALID) from None
    n_trials = cfg.num_samples
    from orchestrator.config import grid_size

    if cfg.search.algorithm == "grid":
        n_trials *= grid_size(cfg.search.space)
    click.echo(
        f"{file}: valid: sweep {cfg.name!r}, {n_trials} trial{'s' if n_trials != 1 else ''} "
        f"of {cfg.trainable} ({cfg.search.algorithm}, {cfg.pruning.scheduler}), "
        f"{cfg.mode} {cfg.metric} over {cfg.max_epochs} epochs"
    )
