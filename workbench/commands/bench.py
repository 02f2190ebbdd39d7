"""`workbench bench activations`: forward+backward time vs native ops, and bytes saved.

A benchmark, not a test. Without specs it runs the default suite in one process: the nine
baselines and the paper's eight functions, 40 sampled search candidates, the per-channel swish
at six DenseNet-BC widths, and the gated activations against native `F.silu(a) * b`; each row
is a ratio to its own native reference, interleaved step by step, over several rounds. It
ends with one line saying whether any formula kernel fell back to eager during the run. Run it
alone (on the shared machine: under `flock /tmp/wb-heavy.lock`); compiling the ~70 kernels
first takes several minutes on a CPU.
"""

from __future__ import annotations

import argparse
import json

DTYPES = ("float32", "float64", "bfloat16", "float16")
SECTIONS = ("baselines", "paper", "candidates", "densenet", "gates")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (bench activations)")
    inner = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    a = inner.add_parser(
        "activations",
        help="forward+backward time of activations relative to native silu",
        description="Time forward+backward of activations against native F.silu (gates: "
        "F.silu(a) * b) in the same run, interleaved step by step over several rounds; "
        "report medians, ratios, bytes saved for backward and the backend that ran. Without "
        "SPECs: the paper's functions, 40 search candidates, DenseNet-BC widths and gates.",
    )
    a.add_argument("specs", nargs="*", metavar="SPEC", help="specs to time (default: the suite)")
    a.add_argument(
        "--sections", default=",".join(SECTIONS),
        help=f"suite sections to run, comma-separated (default all: {','.join(SECTIONS)})",
    )  # fmt: skip
    a.add_argument(
        "--size", default="4096x2048",
        help="tensor shape of elementwise rows and of each gate half (default 4096x2048)",
    )  # fmt: skip
    a.add_argument("--dtype", choices=DTYPES, default="float32")
    a.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    a.add_argument("--repeats", type=int, default=5, help="timed steps per row and round")
    a.add_argument("--rounds", type=int, default=3, help="passes over all rows (default 3)")
    a.add_argument("--warmup", type=int, default=2, help="untimed steps per row first")
    a.add_argument(
        "--backend", choices=("auto", "compiled", "eager"), default="auto",
        help="backend of formula activations (native baselines always run natively)",
    )  # fmt: skip
    a.add_argument(
        "--chains", action="store_true",
        help="also time each formula as a chain of eager torch ops (what the kernels replace)",
    )  # fmt: skip
    a.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a.set_defaults(func=main)


def _shape(text: str) -> tuple[int, ...]:
    from workbench.cli import UserError

    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        shape = ()
    if not shape or any(v < 1 for v in shape):
        raise UserError(f"--size {text!r}: expected positive integers like 4096x2048")
    return shape


def _fallback_line(stats: dict) -> str:
    calls = stats["calls"]
    counts = (f"{calls['compiled']} compiled kernel calls, {calls['eager']} eager, "
              f"{stats['fallbacks']} fallbacks, {stats['recompiles']} recompiles")  # fmt: skip
    if stats["fallbacks"]:
        failed = ", ".join(stats["formulas_failed"])
        return f"eager fallback in this run: YES ({counts}; compile failed for: {failed})"
    return f"eager fallback in this run: none ({counts})"


def main(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from workbench.activations import ActivationError, check_spec, kernel_stats
    from workbench.activations.bench import as_dicts, items_for, run_bench, suite, summary
    from workbench.cli import UserError

    shape = _shape(args.size)
    if args.repeats < 1 or args.rounds < 1 or args.warmup < 0:
        raise UserError("--repeats and --rounds must be >= 1 and --warmup >= 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available here")
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise UserError(f"--sections: unknown {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    if args.specs:
        try:
            items = items_for([check_spec(s) for s in args.specs], shape)
        except ActivationError as exc:
            raise UserError(str(exc)) from None
    else:
        items = [i for i in suite(shape) if i.section in sections]
    rows = run_bench(
        items, dtype=getattr(torch, args.dtype), device=args.device, repeats=args.repeats,
        rounds=args.rounds, warmup=args.warmup, backend=args.backend, chains=args.chains,
        progress=lambda xs: tqdm(xs, desc="bench", unit="row", leave=False),
    )  # fmt: skip
    stats = kernel_stats()
    config = {"shape": list(shape), "dtype": args.dtype, "device": args.device,
              "repeats": args.repeats, "rounds": args.rounds, "warmup": args.warmup,
              "backend": args.backend, "threads": torch.get_num_threads(),
              "torch": torch.__version__}  # fmt: skip
    sums = summary(rows)
    if args.json:
        report = {"config": config, "rows": as_dicts(rows), "summary": sums,
                  "kernel_stats": stats}  # fmt: skip
        print(json.dumps(report, indent=2))
        return 0
    print(f"forward+backward, {args.dtype} on {args.device}, {config['threads']} threads: median "
          f"of {args.rounds} rounds x {args.repeats} steps, each step followed by one of the "
          f"row's native reference (after {args.warmup} warm-up steps)")  # fmt: skip
    width = max(len(r.spec) for r in rows)
    section = None
    for r in rows:
        if r.section != section:
            section = r.section
            print(f"\n[{section}]  reference: {r.reference}")
            print(f"{'activation':<{width}}  {'shape':>15}  {'ms':>8}  {'ref ms':>8}  "
                  f"{'x ref':>6}  {'saved/in':>8}  backend")  # fmt: skip
        shape_text = "x".join(map(str, r.shape))
        print(f"{r.spec:<{width}}  {shape_text:>15}  {r.ms:8.2f}  {r.ref_ms:8.2f}  "
              f"{r.ratio:6.2f}  {r.saved_vs_input:8.2f}  {r.backend}")  # fmt: skip
    print()
    for name, s in sums.items():
        print(f"{name}: {s['rows']:.0f} rows, geometric mean {s['geomean']:.2f}x, "
              f"max {s['max']:.2f}x their native reference")  # fmt: skip
    swiglu = [r for r in rows if r.spec == "swiglu"]
    if swiglu:
        print(f"swiglu: {swiglu[0].ratio:.2f}x F.silu(a) * b")
    print(_fallback_line(stats))
    return 0
