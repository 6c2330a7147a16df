"""A process that has imported once what `python run.py` and `qa-lab` import (torch, transformers, Hydra,
Optuna, W&B, MLflow: several seconds on 2 cores) and forks one child per command the tests run.

Each command still runs in a process of its own, through the real entry point (`run.py`'s main,
`python -m qa_lab.cli`, `python -m qa_lab.bench`), with its own argument list, environment, working folder,
output and exit status; a child can be killed like any process. tests/helpers.py talks to it and keeps
plain subprocesses for what needs a fresh interpreter: libraries that read the environment at import time
(the Hugging Face variables), a terminal, torchrun, or a start-up that is itself being timed.

Protocol, one JSON object per line: a request on stdin {"id", "argv", "env", "cwd", "stdout", "stderr"}
(output files, which exist; stderr null: merged into stdout) is answered on stdout with {"id", "pid"} when the child starts and
{"id", "returncode"} when it ends (negative: killed by that signal). End of stdin ends the zygote.
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import os
import pkgutil
import runpy
import select
import sys
import traceback


def preload() -> None:
    """Import what the commands import, so the children start with it in memory (not the modules that run as
    __main__, qa_lab.cli and qa_lab.bench.__main__: runpy executes those afresh)."""
    import hydra  # noqa: F401
    import mlflow  # noqa: F401
    import optuna  # noqa: F401
    import plotly.graph_objects  # noqa: F401
    import wandb  # noqa: F401
    import wandb.sdk.launch.inputs.internal  # noqa: F401 - wandb.init imports it (and W&B's public API) in every run: ~3 s a child
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401

    import qa_lab.analysis.compare  # noqa: F401
    import qa_lab.analysis.report  # noqa: F401
    import qa_lab.bench.benchmark  # noqa: F401
    import qa_lab.entry  # noqa: F401
    import qa_lab.inference.predict  # noqa: F401
    import qa_lab.studies.loop  # noqa: F401
    import qa_lab.studies.sweeper  # noqa: F401
    import qa_lab.training.recipe  # noqa: F401
    import qa_lab.training.hooks as hooks

    for module in pkgutil.iter_modules(hooks.__path__):
        __import__(f"{hooks.__name__}.{module.name}")


def run_child(request: dict) -> None:
    """In the forked child: become the command, then exit with its status (never return)."""
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.dup2(os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), 1)
        if request["stderr"] is None:  # merged, as stderr=subprocess.STDOUT
            os.dup2(1, 2)
        else:
            os.dup2(os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), 2)
        # fresh stream objects: the zygote's may hold locks or buffered bytes
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        import torch

        # torch read OMP_NUM_THREADS when the zygote imported it: apply the command's own
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
        code = _run(request["argv"])
    except BaseException:  # noqa: BLE001 - whatever happens, the child reports a status and exits
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _run(argv: list[str]) -> int:
    """Run `python <argv>` in this process: `-m module ...` or `script.py ...`; its exit status."""
    sys.orig_argv = [sys.executable, *argv]  # as the interpreter started that way records it (a sweep's owner re-runs it)
    try:
        if argv[0] == "-m":  # as `python -m`: the working folder first on the path
            sys.argv = [argv[1], *argv[2:]]
            sys.path.insert(0, os.getcwd())
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:  # as `python script.py`: the script's folder first
            sys.argv = list(argv)
            sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - as the interpreter does: the traceback, then status 1
        traceback.print_exc()
        return 1
    return 0


def serve() -> None:
    sys.path.remove(os.path.dirname(os.path.abspath(__file__)))  # tests/ is no place to import libraries from
    # the replies get a descriptor of their own; fd 1 becomes stderr, so that what a library prints (W&B's
    # integration in transformers announces offline mode at import) never lands in the protocol
    reply = os.fdopen(os.dup(1), "wb")
    os.set_inheritable(reply.fileno(), False)  # children and their subprocesses never hold it open
    os.dup2(2, 1)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    preload()
    children: dict[int, str] = {}  # pid -> request id
    pending = b""

    def send(message: dict) -> None:
        reply.write(json.dumps(message).encode() + b"\n")
        reply.flush()

    send({"ready": True})
    while True:
        readable, _, _ = select.select([0], [], [], 0.05)
        if readable:
            chunk = os.read(0, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    reply.close()
                    run_child(request)
                children[pid] = request["id"]
                send({"id": request["id"], "pid": pid})
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            send({"id": children.pop(pid), "returncode": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    serve()
