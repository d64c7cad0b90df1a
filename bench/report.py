"""The results: merged rounds, the issue targets, and bench/RESULTS.md."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import WARMUP_SECONDS, Measurement
from bench.projects import COPIER, REPO, SERVICE_VENV, run
from bench.stacks import WORKERS


@dataclass
class Summary:
    """The rounds of one (stack, payload, concurrency), merged."""

    rps: float
    p50_ms: float
    p99_ms: float
    spread: float  # (max - min) / mean of the rounds' req/s
    errors: int
    rounds: list[float] = field(default_factory=list)
    cpu_us: dict[str, float] = field(default_factory=dict)  # median of the rounds, per part


def summarize(measurements: list[Measurement]) -> dict[tuple[str, str, int], Summary]:
    """Mean req/s, median p50, worst p99 and req/s spread per (stack, payload, concurrency)."""
    groups: dict[tuple[str, str, int], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.stack, m.payload, m.connections), []).append(m)
    summaries = {}
    for key, group in groups.items():
        rates = [m.rps for m in group]
        mean = statistics.fmean(rates)
        summaries[key] = Summary(
            rps=mean,
            p50_ms=statistics.median(m.p50_ms for m in group),
            p99_ms=max(m.p99_ms for m in group),
            spread=(max(rates) - min(rates)) / mean if mean else 0.0,
            errors=sum(m.errors for m in group),
            rounds=rates,
            cpu_us={
                part: statistics.median(m.cpu_us[part] for m in group) for part in group[0].cpu_us
            },
        )
    return summaries


def ratio(summary: Summary, reference: Summary) -> float:
    """`summary`'s req/s over `reference`'s: the median of the rounds' own ratios. Each round
    measures every stack once, one after the other, and the machine's speed drifts between
    rounds far more than within one; the ratio of the means, if the rounds do not pair."""
    if len(summary.rounds) != len(reference.rounds) or not summary.rounds:
        return summary.rps / reference.rps
    return statistics.median(a / b for a, b in zip(summary.rounds, reference.rounds, strict=True))


# (stack, reference, payload or None for both, req/s target ratio, p99 target ratio or None)
TARGETS = [
    ("service", "ceiling", "1 row", 0.85, 2.0),
    ("service", "ceiling", "100 rows", 0.75, None),
    ("mixed", "ceiling", "1 row", 0.80, None),
    ("forest", "plain", None, 5.0, None),
    ("service", "mlflow", None, 3.0, None),
    ("service", "bentoml", None, 4.0, None),
    # The API-key check (auth=api_key) costs at most 2% of the default service's throughput.
    ("keys", "service", None, 0.98, None),
    # issue 18: granian behind the same nginx against gunicorn's own ceiling, and its own.
    ("granian", "ceiling", "1 row", 1.5, 2.0),
    ("granian", "ceiling", "100 rows", 1.3, None),
]


def result_table(summaries: dict[tuple[str, str, int], Summary]) -> list[str]:
    """Markdown rows: every measurement group, with its ratios to its reference stack."""
    references = {
        "service": "ceiling",
        "keys": "service",
        "forest": "plain",
        "onnx": "ceiling",
        "mixed": "ceiling",
        "plain": "ceiling",
        "mlflow": "ceiling",
        "bentoml": "ceiling",
        "granian": "ceiling",
        "granian-ceiling": "ceiling",
        "granian-keepalive": "granian",
    }
    lines = [
        "| stack | payload | c | req/s (mean of rounds) | rounds | spread | p50 ms | p99 ms "
        "| errors | req/s ratio (median of rounds) | p99 ratio |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for (name, payload, c), s in sorted(
        summaries.items(), key=lambda i: (i[0][1], i[0][2], i[0][0])
    ):
        reference = summaries.get((references.get(name, ""), payload, c))
        rps = f"{ratio(s, reference):.2f} x {references[name]}" if reference else ""
        p99 = f"{s.p99_ms / reference.p99_ms:.2f} x {references[name]}" if reference else ""
        rounds = " / ".join(f"{r:.0f}" for r in s.rounds)
        lines.append(
            f"| {name} | {payload} | {c} | {s.rps:.0f} | {rounds} | {s.spread:.1%} "
            f"| {s.p50_ms:.2f} | {s.p99_ms:.2f} | {s.errors} | {rps} | {p99} |"
        )
    return lines


def cpu_table(summaries: dict[tuple[str, str, int], Summary]) -> list[str]:
    """Markdown rows: CPU microseconds per request, by part of the stack and for wrk.

    On a machine the load saturates, throughput is about CPUs / total CPU per request, so a
    stack's total against the ceiling's says what its ratio is made of, with less noise than
    req/s (each process's CPU time is its own, whatever else ran beside it).
    """
    parts = ["server", "nginx", "supervisord", "wrk"]
    lines = [
        "| stack | payload | c | " + " | ".join(parts) + " | total | ceiling's total / total |",
        "| --- | --- | ---: | " + "---: | " * len(parts) + "---: | ---: |",
    ]
    for (name, payload, c), s in sorted(
        summaries.items(), key=lambda i: (i[0][1], i[0][2], i[0][0])
    ):
        total = sum(s.cpu_us.get(part, 0.0) for part in parts)
        ceiling = summaries.get(("ceiling", payload, c))
        ceiling_total = sum(ceiling.cpu_us.get(part, 0.0) for part in parts) if ceiling else 0
        ratio = f"{ceiling_total / total:.2f}" if ceiling and total else ""
        cells = " | ".join(f"{s.cpu_us.get(part, 0.0):.0f}" for part in parts)
        lines.append(f"| {name} | {payload} | {c} | {cells} | {total:.0f} | {ratio} |")
    return lines


def target_lines(summaries: dict[tuple[str, str, int], Summary]) -> list[str]:
    """One line per issue target that this run measured: the ratio found, and the target."""
    lines = []
    for name, reference, payload, rps_target, p99_target in TARGETS:
        for (stack, pay, c), s in sorted(summaries.items()):
            ref = summaries.get((reference, pay, c))
            if stack != name or ref is None or (payload and pay != payload):
                continue
            found = ratio(s, ref)
            text = (
                f"{name} / {reference}, {pay}, c={c}: req/s {found:.2f}x "
                f"(target ≥ {rps_target}x: {'met' if found >= rps_target else 'NOT met'})"
            )
            if p99_target:
                p99 = s.p99_ms / ref.p99_ms
                verdict = "met" if p99 <= p99_target else "NOT met"
                text += f"; p99 {p99:.2f}x (target ≤ {p99_target}x: {verdict})"
            lines.append(text)
    return lines


def versions() -> dict[str, str]:
    """Versions of what is measured: the service environment's packages, nginx, wrk, Copier."""
    python = SERVICE_VENV / "bin" / "python"
    script = (
        "import importlib.metadata as m, json, platform; "
        "print(json.dumps({'python': platform.python_version(), **{p: m.version(p) for p in "
        "['scikit-learn', 'numpy', 'onnxruntime', 'skl2onnx', 'msgspec', 'orjson', 'flask', "
        "'werkzeug', 'gunicorn', 'supervisor']}}))"
    )
    found = json.loads(run([str(python), "-c", script], REPO))
    nginx = subprocess.run(["/usr/sbin/nginx", "-v"], capture_output=True, text=True, check=False)
    found["nginx"] = nginx.stderr.strip().split("/")[-1]
    wrk_out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    found["wrk"] = (wrk_out.stdout + wrk_out.stderr).split()[1]
    found["copier"] = run([str(COPIER), "--version"], REPO).split()[-1]
    return found


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    memory = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.MULTILINE)
    return {
        "CPUs (nproc)": str(len(os.sched_getaffinity(0))),
        "CPU model": model.group(1) if model else "unknown",
        "memory": f"{int(memory.group(1)) / 1024 / 1024:.1f} GiB" if memory else "unknown",
        "kernel": platform.release(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def write_results(
    path: Path,
    context: dict,
    summaries,
    rss: dict[str, list[float]],
    restarts: dict[str, int],
    rss_after: dict[str, list[float]],
) -> None:
    """bench/RESULTS.md: the table, the targets, per-worker RSS, timings, versions, machine."""
    spreads = [s.spread for s in summaries.values()]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{' '.join(['python bench/run.py', *context['argv']])}` on "
        f"{context['date']} ({context['elapsed']:.0f} s for the whole run). Numbers from one run "
        "on one machine: compare the ratios, not the absolute rates.",
        "",
        f"Each measurement: wrk, {context['seconds']:g} s, {context['threads']} threads, "
        f"POST /predict through nginx -> gunicorn ({WORKERS} sync workers) under supervisord, "
        f"after a {WARMUP_SECONDS} s warm-up per stack and payload. Every case measured all "
        f"stacks in turn, {context['rounds']} rounds, alternating. p50 is the median of the "
        "rounds' p50, p99 the worst round's p99. Spread is (max - min) / mean of the rounds' "
        "req/s.",
        "",
        "Stacks: **service** = the default render (linear model, NumPy format); **onnx** = the "
        "same with `model_format=onnx`; **mixed** = the mixed-type default (`training_data=csv`, "
        "a CSV of 3 numbers and 2 text categories with empty cells, `write_mixed_csv`; the "
        "linear model in the NumPy format; rows sent as objects with strings); **forest** = the "
        "`estimator=random_forest` render (ONNX); **ceiling** = bench/null_app.py (constant "
        "answer); **plain** = bench/plain_app.py (the same forest in a plain Flask + "
        "scikit-learn view). All six "
        "run the "
        "rendered nginx.conf, gunicorn.conf.py and supervisord.conf; only gunicorn's `wsgi_app` "
        "differs. **mlflow** and **bentoml** = the default render's pipeline, fitted on the same "
        "data in each peer's own environment, served by `mlflow models serve` (uvicorn) and "
        "`bentoml serve` with as many workers, behind the same nginx.conf (upstream pointed at "
        "the peer's loopback port) and supervisord.conf; each gets its documented JSON input "
        "(`dataframe_records`, and BentoML's `input` array) holding the same rows.",
        "",
        *result_table(summaries),
        "",
        "## Targets",
        "",
        *[f"- {line}" for line in target_lines(summaries)],
        "",
        "## CPU per request",
        "",
        "Microseconds of CPU (user + system, from /proc) per answered request, the median of "
        "the rounds: **server** = gunicorn's master and workers (a peer's server processes), "
        "**nginx** and **supervisord** = the stack's, **wrk** = the load generator's. The "
        "machine is saturated under this load, so req/s is about CPUs / total; the last column "
        "is the ceiling's total over the stack's, the ratio that CPU alone predicts.",
        "",
        *cpu_table(summaries),
        "",
        "## Noise",
        "",
        f"req/s spread between rounds: median {statistics.median(spreads):.1%}, "
        f"max {max(spreads):.1%} over {len(spreads)} groups. Targets whose ratio is within "
        "the spread of 1.0 are not distinguishable on this machine.",
        "",
        "## Workers: RSS after warm-up and after measuring, replacements while measured",
        "",
        'Replacements count gunicorn\'s "Booting worker" lines during the measurements '
        "(gunicorn.conf.py sets max_requests = 0, so any is a crash or a timeout; a new worker "
        "imports the app and loads the model before it serves). RSS after measuring shows "
        "whether a worker grows under load.",
        "",
        "| stack | each worker's RSS after warm-up (MiB) | after measuring (MiB) "
        "| workers replaced while measured |",
        "| --- | --- | --- | ---: |",
        *[
            f"| {name} | {', '.join(f'{r:.1f}' for r in values)} "
            f"| {', '.join(f'{r:.1f}' for r in rss_after.get(name, []))} "
            f"| {restarts.get(name, '')} |"
            for name, values in rss.items()
        ],
        "",
        "## Copier",
        "",
        "- `copier copy --trust --defaults` (snapshot of the checkout, tagged): "
        f"{context['copy_s']:.2f} s "
        f"(target < 3 s: {'met' if context['copy_s'] < 3 else 'NOT met'})",
        f"- no-op `copier update --trust --defaults`: {context['update_s']:.2f} s "
        f"(target < 6 s: {'met' if context['update_s'] < 6 else 'NOT met'})",
        "",
        "## Versions",
        "",
        *[f"- {name}: {version}" for name, version in context["versions"].items()],
        "",
        "## Machine",
        "",
        *[f"- {name}: {value}" for name, value in context["machine"].items()],
        "",
        "Load generator, nginx, gunicorn's workers and supervisord share these CPUs "
        "(the load average includes whatever ran just before, e.g. an earlier run).",
        "",
    ]
    path.write_text("\n".join(lines) + kept_sections(path))


# Sections other scripts write into RESULTS.md, each measuring one thing: run.py keeps them
# when it rewrites the rest.
KEPT_SECTIONS = {
    "Image": "bench/image.py",
    "Drift": "bench/drift_cost.py",
    "API keys": "bench/auth_cost.py",
}


def kept_sections(path: Path) -> str:
    """The KEPT_SECTIONS found in `path`, in that order, as text to append."""
    text = path.read_text() if path.exists() else ""
    kept = ""
    for heading in KEPT_SECTIONS:
        _, marker, section = text.partition(f"\n## {heading}\n")
        if marker:
            kept += f"\n## {heading}\n{section.split(chr(10) + '## ', 1)[0]}"
    return kept


def write_section(path: Path, lines: list[str]) -> None:
    """Replace the section `lines` make (its first line the "## ..." heading) in `path`, or add
    it at the end, leaving the rest alone."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    head, marker, tail = text.partition(f"\n{lines[0]}\n")
    rest = ""
    if marker:
        _, next_heading, after = tail.partition("\n## ")
        rest = f"\n## {after}" if next_heading else ""
    path.write_text(head.rstrip("\n") + "\n\n" + "\n".join(lines) + rest)
