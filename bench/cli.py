"""`python bench/run.py`: the options, the tools it needs, and the run from render to report
(bench/run.py's docstring says what it measures)."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench import peers
from bench.load import (
    CONCURRENCIES,
    PAYLOAD_ROWS,
    PAYLOADS,
    WARMUP_SECONDS,
    check_answers,
    measure,
    wrk,
)
from bench.projects import (
    COPIER,
    MIXED_TARGET,
    PACKAGE,
    RESULTS,
    SERVICE_VENV,
    bench_copy,
    granian_copy,
    keepalive_copy,
    render,
    snapshot_template,
    time_noop_update,
    train,
    write_mixed_csv,
)
from bench.report import (
    cpu_table,
    machine,
    result_table,
    summarize,
    target_lines,
    versions,
    write_results,
)
from bench.stacks import (
    STOP_WITHIN,
    Stack,
    rss_mib,
    server_processes,
    start,
    stop,
    worker_boots,
)
from harness.processes import free_port

DESCRIPTION = "Benchmark the rendered service against the null-endpoint ceiling, on the real stack."


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--seconds", type=float, default=10, help="per measurement (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per case (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="2 s, one payload, one concurrency, one round, no forest, nothing written",
    )
    parser.add_argument("--no-forest", action="store_true", help="skip the random-forest pair")
    parser.add_argument("--no-mixed", action="store_true", help="skip the mixed-type stack")
    parser.add_argument(
        "--no-keys", dest="keys", action="store_false", help="skip the API-key stack"
    )
    parser.add_argument(
        "--no-peers", action="store_true", help="skip MLflow and BentoML (bench/peers.py)"
    )
    parser.add_argument(
        "--no-granian", dest="granian", action="store_false", help="skip the granian stacks"
    )
    parser.add_argument(
        "--keepalive",
        type=int,
        default=0,
        metavar="N",
        help="also granian with nginx keeping N idle connections to it (upstream keepalive)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="the results file")
    parser.add_argument(
        "--gunicorn-args",
        default="",
        help='diagnostics: GUNICORN_CMD_ARGS for every stack, e.g. "--max-requests 0"',
    )
    return parser.parse_args(argv)


def check_tools() -> None:
    """Exit with the install line for whatever the harness needs and is missing."""
    missing = []
    if not (SERVICE_VENV / "bin" / "gunicorn").exists():
        missing.append(f"{SERVICE_VENV} (make test builds it)")
    if not COPIER.exists():
        missing.append(f"{COPIER} (the repository's .venv)")
    if shutil.which("wrk") is None:
        missing.append("wrk (apt-get install wrk)")
    if not Path("/usr/sbin/nginx").exists() and shutil.which("nginx") is None:
        missing.append("nginx (apt-get install nginx)")
    if shutil.which("envsubst") is None:
        missing.append("envsubst (apt-get install gettext-base)")
    if missing:
        raise SystemExit("missing: " + "; ".join(missing))


def main(argv: list[str]) -> int:
    options = parse_arguments(argv)
    if options.smoke:
        options.seconds, options.rounds = 2, 1
    payloads = ["1 row"] if options.smoke else list(PAYLOADS)
    concurrencies = [8] if options.smoke else CONCURRENCIES
    with_forest = not (options.smoke or options.no_forest)
    with_peers = not (options.smoke or options.no_peers)
    check_tools()
    started = time.monotonic()
    machine_at_start = machine()
    stacks: list[Stack] = []
    interrupted = False

    def on_signal(number, _frame):
        raise KeyboardInterrupt(f"signal {number}")

    signal.signal(signal.SIGTERM, on_signal)
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        work = Path(scratch)
        try:
            print("==> rendering the default service (copier copy), timing a no-op copier update")
            template = snapshot_template(work / "template")
            copy_s = render(template, work / "service", {})
            update_s = time_noop_update(work / "service")
            print(f"    copier copy {copy_s:.2f} s, copier update {update_s:.2f} s")
            projects = {"service": work / "service"}
            if options.keys:
                render(template, work / "keys", {"auth": "api_key"})
                projects["keys"] = work / "keys"
            if not options.smoke:
                render(template, work / "onnx", {"model_format": "onnx"})
                projects["onnx"] = work / "onnx"
            if options.granian:
                render(template, work / "granian", {"wsgi_server": "granian"})
                projects["granian"] = work / "granian"
            if with_forest:
                render(template, work / "forest", {"estimator": "random_forest"})
                projects["forest"] = work / "forest"
            mixed_rows = []
            if not options.no_mixed:
                answers = {"training_data": "csv", "target_column": MIXED_TARGET}
                render(template, work / "mixed", answers)
                mixed_rows = write_mixed_csv(work / "mixed" / "data" / "train.csv")
                projects["mixed"] = work / "mixed"
            print("==> training")
            for project in projects.values():
                train(project)
            projects["ceiling"] = bench_copy(
                work / "service", work / "ceiling", "null_app:create_app()"
            )
            if options.granian:
                projects["granian-ceiling"] = granian_copy(
                    work / "granian", work / "granian-ceiling", "null_app"
                )
            if options.granian and options.keepalive:
                projects["granian-keepalive"] = keepalive_copy(
                    work / "granian", work / "granian-keepalive", options.keepalive
                )
            if with_forest:
                projects["plain"] = bench_copy(
                    work / "service", work / "plain", "plain_app:create_app()"
                )
            running_peers = {}
            if with_peers:
                for peer in peers.PEERS.values():
                    print(f"==> {peer.name}: environment {peer.venv}, training the same pipeline")
                    if problem := peers.install(peer):
                        print(f"    {peer.name} left out: {problem}", file=sys.stderr)
                        continue
                    projects[peer.name] = peers.peer_project(
                        peer, work / "service", work / peer.name, PACKAGE, free_port()
                    )
                    running_peers[peer.name] = peer
            order = ["ceiling", "service", "keys"]
            order += ["granian-ceiling", "granian", "granian-keepalive"]
            order += ["mixed", "onnx", "plain", "forest", *running_peers]
            print("==> serving", ", ".join(name for name in order if name in projects))
            for name in order:
                if name in projects:
                    stacks.append(
                        start(name, projects[name], options.gunicorn_args, running_peers.get(name))
                    )
            bodies = {}
            for stack in stacks:
                for payload in payloads:
                    peer = running_peers.get(stack.name)
                    if stack.name == "mixed":
                        one = payload == "1 row"
                        body = {"row": mixed_rows[0]} if one else {"rows": mixed_rows}
                    else:
                        body = peer.body(PAYLOAD_ROWS[payload]) if peer else PAYLOADS[payload]
                    path = bodies[stack.name, payload] = (
                        work / f"{stack.name}-{payload.replace(' ', '-')}.json"
                    )
                    path.write_text(json.dumps(body))
                    check_answers(stack, path)
                    wrk(
                        stack.url + stack.predict_path,
                        path,
                        8,
                        WARMUP_SECONDS,
                        options.threads,
                        stack.headers,
                    )
            rss = {s.name: [rss_mib(pid) for pid in server_processes(s)] for s in stacks}
            boots_before = {s.name: worker_boots(s) for s in stacks}
            measurements = []
            for payload in payloads:
                for connections in concurrencies:
                    for round_ in range(1, options.rounds + 1):
                        # Alternate the order each round, so neither stack always goes first.
                        ordered = stacks if round_ % 2 else stacks[::-1]
                        for stack in ordered:
                            m = measure(
                                stack,
                                payload,
                                bodies[stack.name, payload],
                                connections,
                                options.seconds,
                                options.threads,
                                round_,
                            )
                            measurements.append(m)
                            print(
                                f"    {m.stack:17} {payload:8} c={connections:<3} round {round_}: "
                                f"{m.rps:8.0f} req/s  p50 {m.p50_ms:6.2f} ms  "
                                f"p99 {m.p99_ms:6.2f} ms  errors {m.errors}",
                                flush=True,
                            )
            # Workers replaced while measured (max_requests, or crashes): each replacement
            # re-imports the app and reloads the model while its share of requests waits.
            restarts = {s.name: worker_boots(s) - boots_before[s.name] for s in stacks}
            rss_after = {s.name: [rss_mib(pid) for pid in server_processes(s)] for s in stacks}
        except KeyboardInterrupt:
            interrupted = True
        finally:
            for stack in stacks:
                left = stop(stack)
                if left:
                    print(
                        f"    {stack.name}: killed after {STOP_WITHIN} s: {left}", file=sys.stderr
                    )
        if interrupted:
            print("interrupted: every process stopped", file=sys.stderr)
            return 130
    summaries = summarize(measurements)
    print()
    print("\n".join(result_table(summaries)))
    print()
    print("\n".join(target_lines(summaries)))
    print()
    print("\n".join(cpu_table(summaries)))
    print("per-worker RSS (MiB):", {k: [round(v, 1) for v in vs] for k, vs in rss.items()})
    print("... after measuring:", {k: [round(v, 1) for v in vs] for k, vs in rss_after.items()})
    print("workers replaced while measured:", restarts)
    elapsed = time.monotonic() - started
    print(
        f"copier copy {copy_s:.2f} s, no-op copier update {update_s:.2f} s; "
        f"whole run {elapsed:.0f} s"
    )
    if not options.smoke:
        context = dict(
            argv=argv,
            date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            elapsed=elapsed,
            seconds=options.seconds,
            threads=options.threads,
            rounds=options.rounds,
            copy_s=copy_s,
            update_s=update_s,
            gunicorn_args=options.gunicorn_args,
            versions={
                **versions(),
                **{name: peers.version(peer) for name, peer in running_peers.items()},
            },
            machine=machine_at_start,
        )
        write_results(options.output, context, summaries, rss, restarts, rss_after)
        print(f"written: {options.output}")
    return 0
