"""Subcommands that are imported on first use (Click's "lazily loading subcommands" pattern).

``fsclap --help`` needs each command's name and one-line help, nothing else; a
:class:`LazyCommand` carries those and imports the module that defines the command only when the
command's arguments are parsed (it runs, shows its own ``--help``, or completes). So the root
command starts without importing ``pipeline/``, ``model/``, ``flows/`` or torch.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup


def first_paragraph(help_text: str | None) -> str:
    """The part of a command's help that its group's ``--help`` lists."""
    return inspect.cleandoc(help_text or "").split("\n\n")[0].strip()


class LazyCommand(TyperCommand):
    """Stands in for the command (or group) ``name`` defined in ``module``'s Typer ``app``.

    ``group=False``: the command ``name`` of that app; ``group=True``: the whole app is the group
    ``name``. ``help`` is the line the parent's ``--help`` shows, i.e. the first paragraph of the
    real command's help (tests/fsclap/cli/test_lazy.py keeps the two equal).
    """

    def __init__(self, name: str, module: str, help: str, *, group: bool = False) -> None:
        super().__init__(name, help=help, add_help_option=False)
        self.module = module
        self.group = group
        self._target: Any = None

    def load(self) -> Any:
        """The real click command, built from the module's Typer app (imported once)."""
        if self._target is None:
            app = importlib.import_module(self.module).app
            built = typer.main.get_group(app)
            if self.group:
                built.name = self.name
                self._target = built
            else:
                self._target = built.commands[self.name]
        return self._target

    def make_context(self, info_name: str | None, args: list[str], parent=None, **extra: Any):
        # the context (and so the parsing, the help and the invocation) is the real command's
        return self.load().make_context(info_name, args, parent=parent, **extra)


class LazyGroup(TyperGroup):
    """A Typer group whose subcommands are the :class:`LazyCommand` s in ``lazy_subcommands``,
    listed after its own commands in that order."""

    lazy_subcommands: ClassVar[tuple[LazyCommand, ...]] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for command in self.lazy_subcommands:
            self.add_command(command)
