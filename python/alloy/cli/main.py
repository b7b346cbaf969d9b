"""The ``alloy`` command: a click group whose subcommands live in their own modules.

Subcommands are registered in :data:`COMMANDS` as ``name -> "module:attribute"``
and imported only when used, so ``alloy --help`` stays fast and a command whose
optional dependencies are missing does not break the others. To add one, write
``alloy/cli/<name>_cmd.py`` defining a ``click.Command`` and add a line here.
"""
from __future__ import annotations

import importlib

import click

COMMANDS: dict[str, str] = {
    "bench": "alloy.cli.bench_cmd:bench_cmd",
    "launch": "alloy.cli.launch_cmd:launch_cmd",
    "list": "alloy.cli.models_cmd:list_cmd",
    "run": "alloy.cli.run_cmd:run_cmd",
    "serve": "alloy.cli.serve_cmd:serve_cmd",
    "show": "alloy.cli.models_cmd:show_cmd",
    "tune": "alloy.cli.tune_cmd:tune_cmd",
}


class LazyGroup(click.Group):
    """A group that imports each registered subcommand on first use."""

    def __init__(self, *args, lazy_commands: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands:
            module, _, attr = self.lazy_commands[name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            if not isinstance(command, click.Command):
                raise click.ClickException(f"{self.lazy_commands[name]} is not a click command")
            return command
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="alloy-kit", message="alloy %(version)s")
def alloy() -> None:
    """Alloy: GPU kernels in Python, and a local LLM server."""


def main() -> None:
    alloy()


if __name__ == "__main__":
    main()
