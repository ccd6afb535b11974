"""Run MMSSL or any RecBole model through the plugin, RecBole-style.

    python run_recbole_mmssl.py                                   # MMSSL on the embedded ml-100k (text + genre)
    python run_recbole_mmssl.py --model=LightGCN --dataset=tiktok --data_path=DIR
    python run_recbole_mmssl.py --dataset=tiktok --config_files=a.yaml,b.yaml --learning_rate=1e-3
    python run_recbole_mmssl.py --resume=saved/MMSSL-xxx.last.pth --dataset=tiktok

Any other ``--key=value`` is a RecBole/MMSSL config override, read by RecBole's Config as usual.
"""

import argparse
import sys

from recbole_mmssl.data.errors import DataError
from recbole_mmssl.quick_start import results_table, run_recbole_mmssl

DEFAULT_MODEL = "MMSSL"
DEFAULT_DATASET = "ml-100k"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default=DEFAULT_MODEL, help="MMSSL or any RecBole general model")
    parser.add_argument("--dataset", "-d", default=DEFAULT_DATASET, help="dataset folder name under data_path")
    parser.add_argument("--config_files", default=None, help="comma-separated yaml files, as in RecBole")
    parser.add_argument("--resume", default=None, help="checkpoint (.pth or .last.pth) to continue training from")
    parser.add_argument("--breakdown", default=None, help="write results by user/item group to this path prefix "
                        "(e.g. results/tiktok_MMSSL_breakdown -> .md and .png)")
    parser.add_argument("--breakdown_k", type=int, default=20)
    args, _ = parser.parse_known_args(argv)
    return args


def main(argv=None):
    args = parse_args(argv)
    config_files = args.config_files.split(",") if args.config_files else None
    try:
        result = run_recbole_mmssl(
            model=args.model, dataset=args.dataset, config_file_list=config_files, resume=args.resume,
            breakdown_k=args.breakdown_k if args.breakdown else None,
        )
    except DataError as err:  # bad or missing data: the message names the file and the fix
        sys.exit(f"error: {err}")
    print(f"\n{result['model']} on {result['dataset']} (validation: best epoch; test: full ranking)")
    print(results_table(result["best_valid_result"], result["test_result"]))
    if args.breakdown:
        from recbole_mmssl.breakdown import write_breakdown

        paths = write_breakdown({result["model"]: result["breakdown"]}, args.breakdown)
        print("breakdown:", ", ".join(paths))
    if result["saved_model_file"]:
        print(f"checkpoint: {result['saved_model_file']}")


if __name__ == "__main__":
    main()
