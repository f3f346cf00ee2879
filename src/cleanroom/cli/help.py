"""Help that reads well: how every ``cleanroom`` command shows its options.

Typer shows each option's Python type (``--json <bool>``, ``--url <str>``),
which reads as if a flag took a value, and arguments in lower case. Here
(installed once, by ``cli/main.py``) flags show no value, an option shows a
value name in capitals (TEXT, INTEGER, PATH, …; a repeatable one ends in
"…"), arguments are in capitals (NAME, FILE…), and help texts are markdown,
so a sentence a docstring wraps is one sentence on the screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

import typer
import typer.core

MARKUP = "markdown"
_NAMES = {str: "TEXT", int: "INTEGER", float: "NUMBER", Path: "PATH", bool: "BOOLEAN"}


def group(help: str, **kw: Any) -> typer.Typer:
    """A command group as every group of the command line is made."""
    kw.setdefault("no_args_is_help", True)
    return typer.Typer(help=help, rich_markup_mode=MARKUP, **kw)


def _value_name(param: Any) -> str | None:
    if param.metavar is not None:
        return param.metavar
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    desc = param.type_descriptor
    annotation = desc.annotation
    repeat = get_origin(annotation) is list
    if repeat:
        (annotation,) = get_args(annotation)
    if desc.is_choice:
        name = "|".join(str(c) for c in desc.choices or ())
    else:
        name = _NAMES.get(annotation, getattr(annotation, "__name__", "VALUE").upper())
    return name + ("…" if repeat else "")


def install() -> None:
    """Show flags, values and arguments as described in the module."""
    typer.core.TyperOption.display_type_rich = lambda self, ctx: _value_name(self)  # type: ignore[method-assign]
    typer.core.TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]
    typer.core.TyperArgument.display_name_raw = property(  # type: ignore[method-assign,assignment]
        lambda self: self.metavar or self.name.upper()
    )
    typer.core.TyperArgument._usage_display_name = lambda self: (  # type: ignore[method-assign]
        (self.display_name_raw if self.required else f"[{self.display_name_raw}]")
        + ("…" if self.nargs != 1 and not self.metavar else "")
    )
