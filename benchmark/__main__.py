"""`python -m benchmark COMMAND ...`: the SteerBench command line. `--help` lists the commands."""

from __future__ import annotations

import argparse
import importlib
import sys

from .cli import add_arguments, dataclass_help, from_arguments

# command -> (module, config class, one-line help); modules are imported lazily so that
# `--help` and light commands stay fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "frames": ("benchmark.frames", "FramesConfig"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, cls_name) in COMMANDS.items():
        cls = getattr(importlib.import_module(module), cls_name)
        p = sub.add_parser(name, help=dataclass_help(cls), description=dataclass_help(cls),
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_arguments(p, cls)
    args = parser.parse_args(argv)
    module, cls_name = COMMANDS[args.command]
    mod = importlib.import_module(module)
    config = from_arguments(getattr(mod, cls_name), args)
    result = mod.run(config)
    if result is not None:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
