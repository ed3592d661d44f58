"""Options shared by the subcommands."""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand

MULTI_VALUE_OPTIONS = ("--functions", "--function", "-f", "--lengths", "--length", "-L")


def expand_multi_values(args: list[str], options: tuple[str, ...] = MULTI_VALUE_OPTIONS) -> list[str]:
    """Let `--functions fn_a fn_c` mean `--functions fn_a --functions fn_c` (the paper CLI's form).

    Words after a multi-value option, up to the next option, are repeated with that option; the
    `--opt=value` form and repeated flags keep working as usual.
    """
    out: list[str] = []
    current: str | None = None  # the multi-value option whose words we are reading
    for arg in args:
        if arg.startswith("-") and arg != "-":
            name, has_value, _ = arg.partition("=")
            current = name if name in options else None
            out.append(arg)
        elif current is not None:
            if out[-1] != current:
                out.append(current)
            out.append(arg)
        else:
            out.append(arg)
    return out


class MultiValueCommand(TyperCommand):
    """Every option of the command that takes several values (a list) reads the words after it."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        options = tuple(opt for param in self.params if getattr(param, "multiple", False) for opt in param.opts)
        return super().parse_args(ctx, expand_multi_values(args, options or MULTI_VALUE_OPTIONS))
