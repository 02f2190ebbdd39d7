"""`workbench bench activations`: forward+backward time vs native silu, and bytes saved.

A benchmark, not a test. Run it alone (on the shared machine: under
`flock /tmp/wb-heavy.lock`), it takes a few minutes at the default size because the formula
kernels are compiled first.
"""

from __future__ import annotations

import argparse
import json

DTYPES = ("float32", "float64", "bfloat16", "float16")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (bench activations)")
    inner = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    a = inner.add_parser(
        "activations",
        help="forward+backward time of activations relative to native silu",
        description="Time forward+backward of the baselines and the paper's eight functions "
        "(or the given specs) against native F.silu in the same run, interleaved step by step; "
        "report medians, ratios and the bytes saved for backward.",
    )
    a.add_argument("specs", nargs="*", metavar="SPEC", help="default: baselines + paper's 8")
    a.add_argument("--size", default="4096x2048", help="tensor shape, e.g. 4096x2048 (default)")
    a.add_argument("--dtype", choices=DTYPES, default="float32")
    a.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    a.add_argument("--repeats", type=int, default=15, help="timed steps per spec (median)")
    a.add_argument("--warmup", type=int, default=4, help="untimed steps first (>= 3 for auto)")
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


def main(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from workbench.activations import ActivationError, check_spec
    from workbench.activations.bench import DEFAULT_SPECS, as_dicts, run_bench, summary
    from workbench.cli import UserError

    shape = _shape(args.size)
    if args.repeats < 1 or args.warmup < 0:
        raise UserError("--repeats must be >= 1 and --warmup >= 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available here")
    specs = args.specs or list(DEFAULT_SPECS)
    try:
        specs = [check_spec(s) for s in specs]
    except ActivationError as exc:
        raise UserError(str(exc)) from None
    rows = run_bench(
        specs, shape=shape, dtype=getattr(torch, args.dtype), device=args.device,
        repeats=args.repeats, warmup=args.warmup, backend=args.backend, chains=args.chains,
        progress=lambda items: tqdm(items, desc="bench", unit="act", leave=False),
    )  # fmt: skip
    config = {"shape": list(shape), "dtype": args.dtype, "device": args.device,
              "repeats": args.repeats, "warmup": args.warmup, "backend": args.backend,
              "threads": torch.get_num_threads(), "torch": torch.__version__}  # fmt: skip
    stats = summary(rows)
    if args.json:
        print(json.dumps({"config": config, "rows": as_dicts(rows), "summary": stats}, indent=2))
        return 0
    shape_text = "x".join(map(str, shape))
    print(f"forward+backward, {shape_text} {args.dtype} on {args.device}, "
          f"median of {args.repeats} (after {args.warmup} warm-up), {config['threads']} threads")  # fmt: skip
    width = max(len(r.spec) for r in rows)
    print(
        f"{'activation':<{width}}  {'ms':>8}  {'x silu':>6}  {'saved MiB':>9}  {'/input':>6}  backend"
    )
    for r in rows:
        print(f"{r.spec:<{width}}  {r.ms:8.2f}  {r.ratio:6.2f}  {r.saved_bytes / 2**20:9.1f}  "
              f"{r.saved_vs_input:6.2f}  {r.backend}")  # fmt: skip
    if stats:
        print(f"paper's functions: geometric mean {stats['paper_geomean_ratio']:.2f}x silu, "
              f"max {stats['paper_max_ratio']:.2f}x")  # fmt: skip
    return 0
