#!/usr/bin/env python3
"""Run every childproc benchmark beside its references and print the table.

`make bench` runs this script after building build-bench/. Each figure is
measured for childproc and for its references (a floor written with plain
system calls, libuv, Node.js, Bun) in the same run: every repetition runs
all variants of a figure one after the other, so that a change in the
machine's load touches them alike. The table shows the median of the runs,
the fastest and slowest run and their spread, (max - min) / median, and
the ratio of childproc's median to each reference's median.

Counts come from environment variables (BENCH_RUNS, BENCH_SPAWN_SECONDS,
...; see DEFAULTS below). --smoke replaces them with tiny counts, which the
ctest cases bench.*_smoke use to check that every benchmark still runs;
they check nothing about speed.

Bun is installed with npm into --bun-dir when it is missing there. When npm
fails (no registry, no npm), the Bun rows are skipped with the reason.
"""

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_SCRIPTS = os.path.join(SOURCE_DIR, "bench", "node")

# Environment variable -> (value for `make bench`, value for --smoke).
DEFAULTS = {
    "BENCH_RUNS": ("5", "1"),
    "BENCH_MEMORY_RUNS": ("3", "1"),
    "BENCH_SPAWN_SECONDS": ("1", "0.05"),
    "BENCH_BALLAST": ("1G", "4M"),
    "BENCH_SMALL_COUNT": ("200000", "200"),
    "BENCH_64K_COUNT": ("4000", "4"),
    "BENCH_1M_COUNT": ("250", "2"),
    "BENCH_PINGPONG_COUNT": ("20000", "50"),
    "BENCH_CAPTURE_BYTES": ("1G", "4M"),
    "BENCH_CHILDREN": ("1000", "5"),
    "BENCH_HANDLES": ("20000", "20"),
}

BUN_PACKAGE = "@oven/bun-linux-x64"
BUN_VERSION = os.environ.get("BENCH_BUN_VERSION", "1.4.4")
GROUPS = ("spawn_rate", "ipc", "capture", "idle_memory", "handles")
SUBPROCESS_TIMEOUT = 600


class Variant:
    """One implementation of a measurement: a label and a command."""

    def __init__(self, label, command, childproc=False):
        self.label = label
        self.command = command
        self.childproc = childproc
        self.results = []  # one dict of name=value pairs per run
        self.error = None


class Experiment:
    """Variants measured together; figures read values from their runs."""

    def __init__(self, name, variants, runs):
        self.name = name
        self.variants = [v for v in variants if v is not None]
        self.runs = runs


class Figure:
    """One row group of the table: a value read from an experiment's runs."""

    def __init__(self, title, experiment, key, unit, higher_is_better):
        self.title = title
        self.experiment = experiment
        self.key = key
        self.unit = unit
        self.higher_is_better = higher_is_better


class Goal:
    """A target for the ratio of childproc's median to a reference's."""

    def __init__(self, text, figure, reference_label, relation, target):
        self.text = text
        self.figure = figure
        self.reference_label = reference_label
        self.relation = relation  # ">=" or "<="
        self.target = target


def setting(name, smoke):
    normal, tiny = DEFAULTS[name]
    return tiny if smoke else os.environ.get(name, normal)


def parse_size(text):
    match = re.fullmatch(r"(\d+)([KMG]?)", text)
    if match is None:
        sys.exit(f"run.py: invalid size '{text}': expected a number such as "
                 "1000, 64K or 1G")
    shift = {"": 0, "K": 10, "M": 20, "G": 30}[match.group(2)]
    return int(match.group(1)) << shift


def format_bytes(count):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift and count % (1 << shift) == 0:
            return f"{count >> shift} {unit}"
    return f"{count} bytes"


def command_version(command):
    try:
        output = subprocess.run(command, capture_output=True, text=True,
                                timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return output.strip().splitlines()[0] if output.strip() else None


# --------------------------------------------------------------------------
# Runtimes


def find_node():
    node = shutil.which("node")
    if node is None:
        print("Node.js skipped: `node` is not on PATH.")
        return None, None
    return node, command_version([node, "--version"])


def install_bun(bun_dir):
    """Return the path of the bun binary, installing it with npm if needed."""
    binary = os.path.join(bun_dir, "node_modules", *BUN_PACKAGE.split("/"),
                          "bin", "bun")
    if not os.access(binary, os.X_OK):
        npm = shutil.which("npm")
        if npm is None:
            print("Bun skipped: `npm` is not on PATH, so Bun cannot be "
                  "installed.")
            return None
        print(f"Installing Bun {BUN_VERSION} with npm into {bun_dir} ...",
              flush=True)
        os.makedirs(bun_dir, exist_ok=True)
        command = [npm, "install", "--prefix", bun_dir, "--no-save",
                   "--no-audit", "--no-fund", "--loglevel=error",
                   f"{BUN_PACKAGE}@{BUN_VERSION}"]
        try:
            result = subprocess.run(command, capture_output=True, text=True,
                                    timeout=600)
        except subprocess.TimeoutExpired:
            print("Bun skipped: npm install timed out after 600 s.")
            return None
        if result.returncode != 0 or not os.access(binary, os.X_OK):
            lines = (result.stderr or result.stdout).strip().splitlines()
            reason = lines[-1] if lines else f"exit status {result.returncode}"
            print(f"Bun skipped: npm install failed: {reason}")
            return None
    if command_version([binary, "--version"]) is None:
        print(f"Bun skipped: {binary} --version failed.")
        return None
    return binary


# --------------------------------------------------------------------------
# Experiments and figures


class Plan:
    def __init__(self, args):
        self.smoke = args.smoke
        self.bench_dir = os.path.join(os.path.abspath(args.build_dir),
                                      "bench")
        self.node = args.node
        self.node_label = f"Node.js {args.node_version}"
        self.bun = args.bun
        self.bun_label = f"Bun {args.bun_version or ''}".strip()
        self.runs = int(setting("BENCH_RUNS", self.smoke))
        self.experiments = []
        self.figures = []
        self.goals = []

    def program(self, name, *args):
        return [os.path.join(self.bench_dir, name), *map(str, args)]

    def script(self, runtime, name, *args):
        if runtime is None:
            return None
        return [runtime, os.path.join(NODE_SCRIPTS, name), *map(str, args)]

    def runtime_variants(self, name, *args):
        node = self.script(self.node, name, *args)
        bun = self.script(self.bun, name, *args)
        return [Variant(self.node_label, node) if node else None,
                Variant(self.bun_label, bun) if bun else None]

    def experiment(self, name, variants, runs=None):
        experiment = Experiment(name, variants, runs or self.runs)
        self.experiments.append(experiment)
        return experiment

    def figure(self, *args):
        figure = Figure(*args)
        self.figures.append(figure)
        return figure

    def goal(self, *args):
        self.goals.append(Goal(*args))

    # ---- spawn rate

    def add_spawn_rate(self):
        seconds = setting("BENCH_SPAWN_SECONDS", self.smoke)
        ballast = parse_size(setting("BENCH_BALLAST", self.smoke))
        for ballast_bytes, parent in ((0, "small parent"),
                                      (ballast,
                                       f"{format_bytes(ballast)} parent")):
            for in_flight in (1, 8):
                args = (seconds, in_flight, ballast_bytes)
                experiment = self.experiment(
                    f"spawn {in_flight} {parent}",
                    [Variant("childproc",
                             self.program("spawn-rate", "childproc", *args),
                             childproc=True),
                     Variant("posix_spawn floor",
                             self.program("spawn-rate", "posix_spawn", *args)),
                     Variant("libuv uv_spawn",
                             self.program("spawn-rate", "uv_spawn", *args)),
                     *self.runtime_variants("spawn-rate.js", *args)])
                flight = "sequential" if in_flight == 1 else \
                    f"{in_flight} in flight"
                figure = self.figure(
                    f"Spawn /bin/true, {flight}, {parent}", experiment,
                    "spawns_per_s", "spawns/s", True)
                self.goal(f"spawn {flight}, {parent}: >= 0.9 x floor",
                          figure, "posix_spawn floor", ">=", 0.9)
                if ballast_bytes == 0:
                    self.goal(f"spawn {flight}, {parent}: >= Bun", figure,
                              self.bun_label, ">=", 1.0)

    # ---- IPC

    def ipc_variants(self, mode, count, size, pin):
        prefix = ["taskset", "-c", "0"] if pin else []
        child = os.path.join(self.bench_dir, "ipc-child")
        node_child = os.path.join(NODE_SCRIPTS, "ipc-child.js")
        variants = [
            Variant("childproc: C parent, C child",
                    prefix + self.program("ipc-parent", mode, count, size,
                                          child), childproc=True),
            Variant("childproc: C parent, Node.js child",
                    prefix + self.program("ipc-parent", mode, count, size,
                                          node_child, "node"),
                    childproc=True) if self.node else None,
            Variant("raw socketpair floor",
                    prefix + self.program("ipc-floor", mode, count, size)),
        ]
        for variant in self.runtime_variants("ipc-parent.js", mode, count,
                                             size):
            if variant is not None:
                variant.label += " parent and child"
                variant.command = prefix + variant.command
                variants.append(variant)
        return variants

    def add_ipc(self):
        sizes = (("small", 5, setting("BENCH_SMALL_COUNT", self.smoke)),
                 ("64 KiB", 64 * 1024, setting("BENCH_64K_COUNT", self.smoke)),
                 ("1 MiB", 1024 * 1024, setting("BENCH_1M_COUNT", self.smoke)))
        for name, size, count in sizes:
            experiment = self.experiment(
                f"ipc throughput {name}",
                self.ipc_variants("throughput", count, size, False))
            if size == 5:
                figure = self.figure(
                    "IPC one-way, small messages {\"seq\":n,\"data\":\"hello\"}",
                    experiment, "msgs_per_s", "msgs/s", True)
                self.goal("small messages: >= 10 x Node.js to Node.js",
                          figure, f"{self.node_label} parent and child", ">=",
                          10.0)
            else:
                figure = self.figure(f"IPC one-way, {name} messages",
                                     experiment, "mb_per_s", "MB/s", True)
                if size == 64 * 1024:
                    self.goal("64 KiB messages: >= 0.8 x floor", figure,
                              "raw socketpair floor", ">=", 0.8)

        count = setting("BENCH_PINGPONG_COUNT", self.smoke)
        for pin, where in ((False, "unpinned"), (True, "both on CPU 0")):
            experiment = self.experiment(
                f"ipc pingpong {where}",
                self.ipc_variants("pingpong", count, 5, pin))
            median = self.figure(f"IPC round trip, median, {where}",
                                 experiment, "rtt_median_us", "us", False)
            self.figure(f"IPC round trip, p99, {where}", experiment,
                        "rtt_p99_us", "us", False)
            self.goal(f"round trip median, {where}: <= 1.1 x floor", median,
                      "raw socketpair floor", "<=", 1.1)

    # ---- stdout capture and memory

    def add_capture(self):
        size = parse_size(setting("BENCH_CAPTURE_BYTES", self.smoke))
        experiment = self.experiment(
            "capture",
            [Variant("childproc", self.program("capture", "childproc", size),
                     childproc=True),
             Variant("raw read() loop floor",
                     self.program("capture", "raw", size)),
             Variant("libuv uv_read_start",
                     self.program("capture", "uv", size)),
             *self.runtime_variants("capture.js", size)])
        figure = self.figure(f"stdout capture of {format_bytes(size)} from "
                             "head -c N /dev/zero",
                             experiment, "mb_per_s", "MB/s", True)
        self.goal("stdout capture: >= 0.95 x raw read() loop", figure,
                  "raw read() loop floor", ">=", 0.95)

    def add_idle_memory(self):
        children = setting("BENCH_CHILDREN", self.smoke)
        experiment = self.experiment(
            "idle memory",
            [Variant("childproc",
                     self.program("idle-memory", "childproc", children),
                     childproc=True),
             Variant("libuv uv_spawn",
                     self.program("idle-memory", "uv", children)),
             *self.runtime_variants("idle-memory.js", children)],
            runs=int(setting("BENCH_MEMORY_RUNS", self.smoke)))
        figure = self.figure(
            f"Parent memory per idle child, {children} alive (RSS)",
            experiment, "kib_per_child", "KiB", False)
        self.figure(f"Parent heap per idle child, {children} alive (malloc)",
                    experiment, "heap_bytes_per_child", "bytes", False)
        self.goal("memory per idle child: <= 2 KiB", figure, None, "<=", 2.0)

    # ---- handle passing

    def add_handles(self):
        count = setting("BENCH_HANDLES", self.smoke)
        experiment = self.experiment(
            "handles",
            [Variant("childproc",
                     self.program("handle-rate", "childproc", count),
                     childproc=True),
             Variant("raw SCM_RIGHTS floor",
                     self.program("handle-rate", "floor", count))])
        self.figure("Handle passing C to C, one descriptor per message",
                    experiment, "handles_per_s", "handles/s", True)


# --------------------------------------------------------------------------
# Running


def run_variant(variant):
    try:
        result = subprocess.run(variant.command, capture_output=True,
                                text=True, timeout=SUBPROCESS_TIMEOUT,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        variant.error = f"timed out after {SUBPROCESS_TIMEOUT} s"
        return
    except OSError as error:
        variant.error = str(error)
        return
    lines = result.stdout.strip().splitlines()
    values = {}
    if result.returncode == 0 and lines:
        for field in lines[-1].split():
            name, _, value = field.partition("=")
            try:
                values[name] = float(value)
            except ValueError:
                pass
    if result.returncode != 0 or not values:
        stderr = result.stderr.strip().splitlines()
        variant.error = (f"exit status {result.returncode}: "
                         + (stderr[-1] if stderr else "no result line"))
        return
    variant.results.append(values)


def run_experiment(experiment):
    for run in range(experiment.runs):
        for variant in experiment.variants:
            if variant.error is None:
                run_variant(variant)
        print(f"  {experiment.name}: run {run + 1}/{experiment.runs} done",
              flush=True)
    for variant in experiment.variants:
        if variant.error is not None:
            print(f"  FAILED {experiment.name}, {variant.label}: "
                  f"{variant.error}\n    command: {' '.join(variant.command)}",
                  flush=True)


# --------------------------------------------------------------------------
# Reporting


def summary(variant, key):
    values = [r[key] for r in variant.results if key in r]
    if not values:
        return None
    median = statistics.median(values)
    spread = (max(values) - min(values)) / median if median else 0.0
    return median, min(values), max(values), spread, len(values)


def format_value(value):
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def primary_childproc(figure):
    for variant in figure.experiment.variants:
        if variant.childproc and summary(variant, figure.key):
            return variant
    return None


def figure_rows(figure):
    """Rows of (label, median, min-max, spread, ratio) for one figure."""
    primary = primary_childproc(figure)
    primary_median = summary(primary, figure.key)[0] if primary else None
    rows = []
    for variant in figure.experiment.variants:
        stats = summary(variant, figure.key)
        if stats is None:
            if variant.error is not None:
                rows.append((variant.label, "failed", "", "", ""))
            continue
        median, low, high, spread, _ = stats
        ratio = ""
        if primary_median is not None and variant is not primary and median:
            ratio = f"{primary_median / median:.2f}"
        rows.append((variant.label, format_value(median),
                     f"{format_value(low)}-{format_value(high)}",
                     f"{spread * 100:.0f}%", ratio))
    return rows


def evaluate(goal):
    """Return (ratio text, verdict) for a goal."""
    primary = primary_childproc(goal.figure)
    if primary is None:
        return "", "not measured"
    value = summary(primary, goal.figure.key)[0]
    if goal.reference_label is None:
        ratio = value
        measured = f"{value:.2f} {goal.figure.unit}"
    else:
        reference = next((v for v in goal.figure.experiment.variants
                          if v.label == goal.reference_label), None)
        stats = summary(reference, goal.figure.key) if reference else None
        if stats is None or stats[0] == 0:
            return "", f"not measured: no {goal.reference_label} figure"
        ratio = value / stats[0]
        measured = f"{ratio:.2f}"
    met = ratio >= goal.target if goal.relation == ">=" else \
        ratio <= goal.target
    return measured, "met" if met else "missed"


def machine_facts(args):
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    libuv = command_version(["pkg-config", "--modversion", "libuv"])
    gcc = command_version(["gcc", "--version"])
    return [
        ("CPU", f"{model}, {os.cpu_count()} CPUs"),
        ("Kernel", platform.release()),
        ("gcc", gcc or "unknown"),
        ("libuv (Debian)", libuv or "unknown"),
        ("Node.js", args.node_version or "not found"),
        ("Bun", args.bun_version or "skipped"),
        ("Load average before / after",
         f"{args.load_before} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}"),
        ("Runs", f"{setting('BENCH_RUNS', args.smoke)} per figure "
                 f"({setting('BENCH_MEMORY_RUNS', args.smoke)} for memory)"),
    ]


def print_text(plan, facts):
    print()
    for name, value in facts:
        print(f"{name}: {value}")
    for figure in plan.figures:
        better = "higher" if figure.higher_is_better else "lower"
        print(f"\n{figure.title} ({figure.unit}, {better} is better)")
        print(f"  {'implementation':<44} {'median':>11} {'min-max':>21} "
              f"{'spread':>6} {'childproc/this':>14}")
        for label, median, span, spread, ratio in figure_rows(figure):
            print(f"  {label:<44} {median:>11} {span:>21} {spread:>6} "
                  f"{ratio:>14}")
    print("\nGoals (childproc's median against the reference's median in "
          "this run)")
    if plan.smoke:
        print("  (a smoke run: with tiny counts these verdicts mean nothing)")
    for goal in plan.goals:
        measured, verdict = evaluate(goal)
        print(f"  {goal.text:<55} {measured:>12}  {verdict}")


def markdown(plan, facts, command):
    lines = ["Command: `" + command + "`", ""]
    lines += ["| Machine | |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in facts]
    lines += ["", "| Figure | Implementation | Median | Min-max | Spread | "
              "childproc / this |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for figure in plan.figures:
        better = "higher" if figure.higher_is_better else "lower"
        title = f"{figure.title} ({figure.unit}, {better} is better)"
        for label, median, span, spread, ratio in figure_rows(figure):
            lines.append(f"| {title} | {label} | {median} | {span} | "
                         f"{spread} | {ratio} |")
            title = ""
    lines += ["", "| Goal | Measured | Result |", "| --- | ---: | --- |"]
    for goal in plan.goals:
        measured, verdict = evaluate(goal)
        lines.append(f"| {goal.text} | {measured} | {verdict} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default="build-bench",
                        help="CMake build directory with bench/ programs")
    parser.add_argument("--bun-dir",
                        help="where npm installs Bun (default: "
                             "BUILD_DIR/bun)")
    parser.add_argument("--no-bun", action="store_true",
                        help="leave Bun out instead of installing it")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny counts and one run, to check that each "
                             "benchmark runs")
    parser.add_argument("--only", default=",".join(GROUPS),
                        help="comma-separated groups: " + ", ".join(GROUPS))
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the machine and tables as Markdown")
    args = parser.parse_args()

    groups = [g for g in args.only.split(",") if g]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group {unknown[0]}: expected one of "
                     + ", ".join(GROUPS))
    if not os.path.isdir(os.path.join(args.build_dir, "bench")):
        parser.error(f"{args.build_dir}/bench not found: build with "
                     "`make bench`, or pass --build-dir")

    args.load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    args.node, args.node_version = find_node()
    args.bun = None
    args.bun_version = None
    if args.no_bun:
        print("Bun skipped: --no-bun.")
    else:
        args.bun = install_bun(args.bun_dir or
                               os.path.join(args.build_dir, "bun"))
        if args.bun:
            args.bun_version = command_version([args.bun, "--version"])

    plan = Plan(args)
    for group in groups:
        getattr(plan, f"add_{group}")()
    started = time.monotonic()
    for experiment in plan.experiments:
        run_experiment(experiment)
    print(f"\nMeasured in {time.monotonic() - started:.0f} s.")

    facts = machine_facts(args)
    print_text(plan, facts)
    if args.markdown:
        command = "make bench" if not args.smoke else " ".join(sys.argv)
        with open(args.markdown, "w", encoding="utf-8") as out:
            out.write(markdown(plan, facts, command))
        print(f"\nMarkdown written to {args.markdown}")

    failed = [f"{e.name}, {v.label}" for e in plan.experiments
              for v in e.variants if v.error is not None]
    if failed:
        print(f"\n{len(failed)} benchmark(s) failed: " + "; ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
