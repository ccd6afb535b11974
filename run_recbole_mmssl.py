"""Run MMSSL or any RecBole model through the plugin, RecBole-style.

    python run_recbole_mmssl.py                                   # MMSSL on the embedded ml-100k (text + genre)
    python run_recbole_mmssl.py --model=LightGCN --dataset=tiktok --data_path=DIR
    python run_recbole_mmssl.py --dataset=tiktok --config_files=a.yaml,b.yaml --learning_rate=1e-3
    python run_recbole_mmssl.py --resume=saved/MMSSL-xxx.last.pth --dataset=tiktok

Any other ``--key=value`` is a RecBole/MMSSL config override; unknown keys and bad values are refused
before any data is loaded. Errors print ``error:`` / ``fix:`` lines and exit with code 2 (``--debug``
shows the traceback); Ctrl-C exits with 130 after printing the command that continues the run.
"""

import argparse
import os
import sys

from recbole_mmssl.cli import ArgumentParser, check_not_an_input, check_output_folder, config_overrides, run_cli
from recbole_mmssl.quick_start import results_table, run_recbole_mmssl

DEFAULT_MODEL = "MMSSL"
DEFAULT_DATASET = "ml-100k"
PROG = "run_recbole_mmssl.py"


def build_parser():
    parser = ArgumentParser(prog=PROG, description=__doc__, allow_abbrev=False,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default=DEFAULT_MODEL, help="MMSSL or any RecBole general model")
    parser.add_argument("--dataset", "-d", default=DEFAULT_DATASET, help="dataset folder name under data_path")
    parser.add_argument("--config_files", default=None, help="comma-separated yaml files, as in RecBole")
    parser.add_argument("--resume", default=None, help="checkpoint (.pth or .last.pth) to continue training from")
    parser.add_argument("--breakdown", default=None, help="write results by user/item group to this path prefix "
                        "(e.g. results/tiktok_MMSSL_breakdown -> .md and .png)")
    parser.add_argument("--breakdown_k", type=int, default=20)
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    return parser


def parse_args(argv=None):
    args, _ = build_parser().parse_known_args(argv)
    return args


def command_prefix():
    """How the user started this script (for the command that continues an interrupted run)."""
    script = sys.argv[0] if os.path.basename(sys.argv[0]) == PROG else PROG
    return ["python", script]


def _main(argv):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    cmd_args = config_overrides(extra, PROG)
    config_files = [p.strip() for p in args.config_files.split(",") if p.strip()] if args.config_files else None
    if args.breakdown:
        check_output_folder(os.path.dirname(os.path.abspath(args.breakdown)), "--breakdown")
        inputs = {"--resume": args.resume, **{f"--config_files ({p})": p for p in config_files or []}}
        for suffix in (".md", ".png"):
            check_not_an_input(args.breakdown + suffix, "--breakdown", inputs)
    if args.breakdown_k < 1:
        parser.error(f"--breakdown_k must be at least 1, got {args.breakdown_k}")
    result = run_recbole_mmssl(
        model=args.model, dataset=args.dataset, config_file_list=config_files, resume=args.resume,
        breakdown_k=args.breakdown_k if args.breakdown else None, cmd_args=cmd_args,
        command_line=command_prefix() + list(argv),
    )
    print(f"\n{result['model']} on {result['dataset']} (validation: best epoch; test: full ranking)")
    print(results_table(result["best_valid_result"], result["test_result"]))
    if args.breakdown:
        from recbole_mmssl.breakdown import write_breakdown

        paths = write_breakdown({result["model"]: result["breakdown"]}, args.breakdown)
        print("breakdown:", ", ".join(paths))
    if result["saved_model_file"]:
        print(f"checkpoint: {result['saved_model_file']}")
    return 0


def main(argv=None):
    """The command: returns its exit code (0, 2 for a user error, 130 for Ctrl-C)."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
