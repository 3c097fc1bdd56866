"""The ``sweepcast`` command line. Light imports only: subcommands import heavy deps lazily."""

from __future__ import annotations

import importlib

import click

# Each subcommand lives in orchestrator/commands/<module>.py and exposes ``command`` (a click
# Command or Group). Listed here so `sweepcast --help` shows them in a stable order.
_COMMANDS = [
    "validate",
    "run",
    "resume",
    "report",
    "replay",
    "submit",
    "jobs",  # status / logs / stop
    "cluster",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sweepcast")
def main() -> None:
    """sweepcast: hyperparameter sweeps on Ray Tune that forecast learning curves,
    stop trials that cannot win, score every trial and record everything in MLflow."""


def _register() -> None:
    for name in _COMMANDS:
        modname = f"orchestrator.commands.{name}"
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:  # not written yet
                continue
            raise
        cmds = getattr(mod, "commands", None) or [mod.command]
        for c in cmds:
            main.add_command(c)


_register()

if __name__ == "__main__":
    main()
