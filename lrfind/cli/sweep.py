"""`lrfind sweep`."""

from __future__ import annotations

import json

import typer

from lrfind.cli.common import (
    JsonReply,
    guarded,
    launch_if_requested,
    load,
    make_cli_console,
    stop_on_signals,
)
from lrfind.cli.options import (
    ConfigArg,
    DebugOpt,
    JsonOpt,
    MethodOpt,
    NprocOpt,
    OutOpt,
    QuietOpt,
    SetOpt,
)
from lrfind.errors import (
    EXIT_NO_ANSWER,
    Interrupted,
)


def sweep_command(
    config: ConfigArg,
    set_: SetOpt = None,
    out: OutOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    method: MethodOpt = None,
    nproc: NprocOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Run the LR range test described by CONFIG; write the plot, history and result.json.

    Exit codes: 0 done, 2 bad config/data/usage, 3 no reliable suggestion, 130 interrupted.
    """
    reply = JsonReply(json_output)

    def body() -> int:
        launch_if_requested(nproc)
        from lrfind.cli.console import SweepProgress, summary_table
        from lrfind.engine import distributed
        from lrfind.outputs.report.summary import one_line_summary
        from lrfind.workflows.sweep import result_json, sweep

        loaded = load(config, set_, method)
        console = make_cli_console()
        with stop_on_signals() as stop:
            # Asking who prints joins nothing: sweep joins the process group and leaves it.
            main_rank = distributed.launched().is_main
            progress = SweepProgress(console, enabled=not quiet and main_rank)
            with progress:
                run = sweep(loaded, out=out, reporter=progress, stop=stop)
        if run.run_dir is None:
            return 0
        result = run.result
        reply.set(json.loads(result_json(result)))
        if quiet:
            console.print(one_line_summary(result, str(run.run_dir)), markup=False)
        else:
            files = {label: str(path) for label, path in run.files.items()}
            console.print(summary_table(result, files))
        if not result.complete:
            raise Interrupted(f"interrupted; partial results in {run.run_dir}")
        if result.suggestion.lr is None:
            reply.fail(EXIT_NO_ANSWER, f"no reliable suggestion: {result.suggestion.reason}")
            return EXIT_NO_ANSWER
        return 0

    code = guarded(debug, body, reply)
    raise typer.Exit(code)
