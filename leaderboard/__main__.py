"""`python -m leaderboard COMMAND ...`: the SteerBench leaderboard. `--help` lists the commands.

    submit         validate an ONNX model and its card, evaluate it, add the entry (make submit)
    add-reference  evaluate the teacher or the straight-ahead policy as an entry
    baselines      add the references and every model of models/zoo missing from the leaderboard
    build          regenerate README.md and index.html from the entries (make leaderboard)
    verify         re-evaluate the entries; check that metrics and hashes reproduce (make verify)
    clips          make missing clips again from the entries' models (byte for byte, or not at all)

A rejected submission prints one line, 'rejected: <what is wrong>. <what to fix>', and exits with
status 1; `verify` exits with status 1 when any entry is not OK.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from benchmark.common.cli import add_arguments, dataclass_help, from_arguments

# command -> (module, config class, run function, summary)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "submit": ("leaderboard.submit", "SubmitConfig", "run", "validate, evaluate and add a model (ONNX + card)"),
    "add-reference": ("leaderboard.submit", "AddReferenceConfig", "run_reference",
                      "evaluate the teacher or the straight-ahead policy as an entry"),
    "baselines": ("leaderboard.submit", "BaselinesConfig", "run_baselines",
                  "add the references and the zoo models that are missing"),
    "build": ("leaderboard.publish", "BuildConfig", "run", "regenerate README.md and index.html from the entries"),
    "verify": ("leaderboard.verify", "VerifyConfig", "run", "re-evaluate the entries and check they reproduce"),
    "clips": ("leaderboard.clips", "ClipsConfig", "run_clips", "make missing clips again from the entries' models"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m leaderboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, cls_name, _, summary) in COMMANDS.items():
        if name == wanted:  # only the command being run imports its module
            cls = getattr(importlib.import_module(module), cls_name)
            p = sub.add_parser(name, help=summary, description=dataclass_help(cls))
            add_arguments(p, cls)
        else:
            sub.add_parser(name, help=summary)
    args = parser.parse_args(argv)
    module, cls_name, func, _ = COMMANDS[args.command]
    mod = importlib.import_module(module)
    config = from_arguments(getattr(mod, cls_name), args)

    from benchmark.evaluation.backends import BackendError

    from .board import BoardError
    from .common import Rejected

    try:
        result = getattr(mod, func)(config)
    except Rejected as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except (BoardError, BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.command == "verify":
        from .verify import format_report

        print(format_report(result))
        return 0 if result["ok"] else 1
    print(json.dumps(result, indent=2, default=str))
    if (args.command == "baselines" and result["rejected"]) or (args.command == "clips" and result["failed"]):
        return 1
    return 0


if __name__ == "__main__":  # the guard matters: evaluation workers are spawned and re-import __main__
    sys.exit(main())
