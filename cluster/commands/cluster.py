"""``hzz cluster up|status|scale|down``: the swarm stack's stand-in on one machine."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from cluster.defaults import setting

from .broker import add_broker_arguments, command_to
from .common import DEFAULT_OUT, EXIT_FAILED, EXIT_OK, HelpFormatter, local_workers, positive


def add_cluster_parser(subparsers: argparse._SubParsersAction) -> None:
    from cluster.runtime.localstack import DEFAULT_DIR

    parser = subparsers.add_parser(
        "cluster",
        help="start/stop a local stand-in of the Docker stack: scheduler, workers, plotter",
        description=(
            "Run the Docker stack's processes on this machine, without Docker: a real "
            "`dask scheduler`, N `dask worker` processes and `hzz plotter`, in the "
            "background on 127.0.0.1, speaking mutual TLS with certificates made for them "
            "in DIR/certificates (readable by you only). Then: hzz run --scheduler ADDRESS "
            "--certificates DIR/certificates."
        ),
        formatter_class=HelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter
        )
        sub.add_argument(
            "--dir",
            type=Path,
            default=Path(setting("HZZ_CLUSTER_DIR", DEFAULT_DIR)),
            help="state directory: state.json (pids, addresses) and logs/ (env HZZ_CLUSTER_DIR)",
        )
        return sub

    up = action("up", "start the scheduler, the workers and the plotter")
    up.add_argument(
        "--workers", metavar="N", action=local_workers(), default=2, help="worker processes"
    )
    up.add_argument(
        "--threads", metavar="N", action=positive(), default=1, help="threads per worker"
    )
    up.add_argument("--memory-limit", default="2GiB", help="memory limit per worker")
    up.add_argument("--port", type=int, default=0, help="scheduler port (0: any free port)")
    up.add_argument(
        "--dashboard-port", type=int, default=0, help="dashboard port (0: any free port)"
    )
    up.add_argument("--plots", metavar="DIR", default=DEFAULT_OUT, help="the plotter's --out")
    up.add_argument("--no-plotter", action="store_true", help="do not start the plotter")
    add_broker_arguments(up)
    up.set_defaults(handler=up_command)

    action("status", "show the addresses and which processes run").set_defaults(
        handler=status_command
    )
    scale = action("scale", "add or stop workers until N run (new ones take work at once)")
    scale.add_argument("workers", metavar="N", action=local_workers(), help="workers wanted")
    scale.set_defaults(handler=scale_command)
    action("down", "stop every process of the local cluster").set_defaults(handler=down_command)


def up_command(args: argparse.Namespace) -> int:
    from cluster.runtime.localstack import certificates_dir, up
    from cluster.service.amqp import broker_url

    certificates = certificates_dir(args.dir.resolve())
    plotter_args = None
    plotter_env = {}
    if not args.no_plotter:
        plotter_args = ["--out", str(Path(args.plots).resolve())]
        plotter_args += ["--exchange", args.exchange, "--queue", args.queue]
        if args.broker:
            plotter_env["HZZ_BROKER"] = args.broker
    state = up(
        args.dir,
        args.workers,
        threads=args.threads,
        memory_limit=args.memory_limit,
        port=args.port,
        dashboard_port=args.dashboard_port,
        plotter_args=plotter_args,
        plotter_env=plotter_env,
    )
    print(f"scheduler: {state.scheduler}")
    print(f"dashboard: {state.dashboard}")
    print(f"workers:   {len(state.of_role('worker'))}")
    if plotter_args is not None:
        print(f"plotter:   PNGs into {plotter_args[1]}")
    print(f"state:     {args.dir.resolve() / 'state.json'}")
    run = ["hzz", "run", "--scheduler", state.scheduler, "--certificates", str(certificates)]
    if plotter_args is None:
        print(f"run with:  {shlex.join(run)}")
    else:  # the run sends its histograms where this plotter listens
        print(f"run with:  {command_to(run, broker_url(args.broker), args.exchange, args.queue)}")
    return EXIT_OK


def status_command(args: argparse.Namespace) -> int:
    from analysis.errors import RunFailure
    from cluster.runtime.localstack import certificates_dir, connected_workers, load_state

    state = load_state(args.dir)
    print(f"scheduler: {state.scheduler}")
    print(f"dashboard: {state.dashboard}")
    for proc in state.processes:
        print(
            f"  {proc.name:<12} pid {proc.pid:<8} {'up' if proc.alive() else 'DOWN':<5} {proc.log}"
        )
    try:
        connected = connected_workers(state.scheduler, certificates_dir(args.dir), "5s")
    except (OSError, TimeoutError) as err:
        raise RunFailure(f"scheduler {state.scheduler} does not answer: {err}") from err
    print(f"workers connected: {len(connected)} ({', '.join(sorted(connected))})")
    all_up = all(proc.alive() for proc in state.processes)
    return EXIT_OK if all_up else EXIT_FAILED


def scale_command(args: argparse.Namespace) -> int:
    from cluster.runtime.localstack import scale

    added, stopped = scale(args.dir, args.workers)
    if added:
        print(f"started and connected: {', '.join(added)}")
    if stopped:
        print(f"stopped: {', '.join(stopped)}")
    print(f"workers: {args.workers}")
    return EXIT_OK


def down_command(args: argparse.Namespace) -> int:
    from analysis.errors import InputError
    from cluster.runtime.localstack import StackError, down

    try:
        stopped = down(args.dir)
    except StackError as err:  # nothing recorded to stop: the --dir given is wrong
        raise InputError(str(err)) from err
    print(f"stopped {len(stopped)} processes: {', '.join(p.name for p in stopped) or 'none'}")
    return EXIT_OK
