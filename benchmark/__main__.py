"""`python -m benchmark COMMAND ...`: the SteerBench command line. `--help` lists the commands."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from benchmark.common.cli import add_arguments, dataclass_help, from_arguments

# command -> (module, config class); `train ALGO` commands are nested. Modules are imported only
# to build the parser of the command being run, so `--help` and light commands stay fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "frames": ("benchmark.reporting.frames", "FramesConfig"),
    "obstacle-figure": ("benchmark.reporting.obstacle_figure", "ObstacleFigureConfig"),
    "record": ("benchmark.data.record", "RecordConfig"),
    "drive": ("benchmark.data.drive", "DriveConfig"),
    "export-udacity": ("benchmark.data.udacity", "ExportConfig"),
    "import-udacity": ("benchmark.data.udacity", "ImportConfig"),
    "export-minari": ("benchmark.data.minari_io", "ExportConfig"),
    "import-minari": ("benchmark.data.minari_io", "ImportConfig"),
    "train bc": ("benchmark.training.train", "TrainConfig"),
    "train dagger": ("benchmark.training.dagger", "DaggerConfig"),
    "train dart": ("benchmark.training.dart", "DartConfig"),
    "train hg-dagger": ("benchmark.training.hg_dagger", "HGDaggerConfig"),
    "evaluate": ("benchmark.evaluation.evaluate", "EvaluateConfig"),
    "sweep": ("benchmark.evaluation.sweep", "SweepConfig"),
    "baselines": ("benchmark.training.baselines", "BaselinesConfig"),
    "plot": ("benchmark.reporting.plots", "PlotConfig"),
    "compare": ("benchmark.reporting.compare", "CompareConfig"),
    "video": ("benchmark.reporting.video", "VideoConfig"),
    "calibrate-disturbance": ("benchmark.evaluation.calibration", "CalibrateConfig"),
    "bench": ("benchmark.reporting.bench", "BenchConfig"),
    "causal-confusion": ("benchmark.reporting.causal_confusion", "CausalConfusionConfig"),
    "memory": ("benchmark.reporting.memory", "MemoryConfig"),
    "multimodal": ("benchmark.reporting.multimodal", "MultimodalConfig"),
    "forks": ("benchmark.reporting.forks", "ForksConfig"),
    "lanes": ("benchmark.reporting.forks", "LanesConfig"),
    "hierarchy": ("benchmark.reporting.hierarchy", "HierarchyConfig"),
}
SUMMARIES = {
    "frames": "write the camera figure (left, centre, right views and the map)",
    "obstacle-figure": "write the obstacle figure (one image, the teacher's left and right passes)",
    "record": "record the teacher driving the training tracks",
    "drive": "drive a track yourself (keyboard or gamepad) and record it",
    "export-udacity": "write a dataset as a Udacity driving_log.csv with PNG frames",
    "import-udacity": "import a Udacity-style recording (driving_log.csv + images) as a dataset",
    "export-minari": "write a dataset as a Minari dataset (frames, actions, labels, env spec)",
    "import-minari": "import a Minari dataset written by export-minari as a dataset",
    "train": "train a policy: bc, dagger, dart or hg-dagger",
    "evaluate": "evaluate a policy on the versioned protocol (records + results JSON)",
    "sweep": "evaluate many policies x protocols x profiles x condition sets, locally or on a Ray cluster",
    "bench": "evaluate the zoo, the teacher and straight-ahead (quick profile); figures and summary",
    "plot": "figures (error growth, drift, survival, autonomy, trajectories) and the results table",
    "compare": "two methods on identical episodes: McNemar on crashes, paired bootstrap, p-values",
    "video": "replay one evaluation episode exactly and write it as a video (MP4 and animated WebP)",
    "calibrate-disturbance": "the teacher's survival and offset under the disturbed condition, level by level",
    "baselines": "train the model zoo (bc, bc-shifted, dart, dagger, hg-dagger) at one label budget",
    "causal-confusion": "BC with and without a steering gauge in the frame (and a remedy): the loss-vs-driving gap",
    "memory": "a feed-forward PilotNet against a PilotNet-GRU under camera dropouts (and the copycat check)",
    "multimodal": "point, mixture and categorical heads on the obstacle task's bimodal demonstrations",
    "forks": "command-conditioned PilotNets (commands as recorded or relabelled in hindsight) against BC at forks",
    "lanes": "the forks study's models on the lane-goal task: commands to change lane on multi-lane roads",
    "hierarchy": "PilotNet with latent options (HVIL-style ELBO) against flat BC in traffic with hidden intents",
    "train bc": "behaviour cloning from a recorded dataset",
    "train dagger": "DAgger: learner rollouts labelled by the teacher, aggregated, retrained",
    "train dart": "DART: noisy teacher demonstrations, noise set from the learner's error",
    "train hg-dagger": "HG-DAgger: the teacher takes over when the learner drifts",
}


def _clean_errors() -> tuple[type[Exception], ...]:
    """Errors whose message says all (Ray missing, a cluster that does not answer, a sweep's failures): printed as
    one line, status 1, without a traceback."""
    from benchmark.evaluation.backends import BackendError
    from benchmark.evaluation.sweep import SweepError

    return BackendError, SweepError


def _command_parser(sub, name: str, words: list[str]) -> None:
    module, cls_name = COMMANDS[" ".join(words)]
    cls = getattr(importlib.import_module(module), cls_name)
    p = sub.add_parser(name, help=SUMMARIES.get(" ".join(words), ""), description=dataclass_help(cls))
    add_arguments(p, cls)
    p.set_defaults(_command=" ".join(words))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    wanted = [a for a in argv if not a.startswith("-")][:2]
    for key in COMMANDS:
        words = key.split()
        selected = words[: len(wanted)] == wanted[: len(words)]
        if len(words) == 1:
            if selected:
                _command_parser(sub, words[0], words)
            else:
                sub.add_parser(words[0], help=SUMMARIES.get(key, ""))
        else:
            if words[0] not in groups:
                g = sub.add_parser(words[0], help=SUMMARIES.get(words[0], ""))
                groups[words[0]] = g.add_subparsers(dest="algorithm", metavar="ALGORITHM", required=True)
            if selected:
                _command_parser(groups[words[0]], words[1], words)
            else:
                groups[words[0]].add_parser(words[1], help=SUMMARIES.get(key, ""))
    args = parser.parse_args(argv)
    module, cls_name = COMMANDS[args._command]
    mod = importlib.import_module(module)
    config = from_arguments(getattr(mod, cls_name), args)
    try:
        result = mod.run(config)
    except Exception as exc:
        if not isinstance(exc, _clean_errors()):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result is not None:
        print(json.dumps(result, indent=2, default=str) if isinstance(result, dict) else result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
