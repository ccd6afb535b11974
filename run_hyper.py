"""Hyper-parameter search with Ray Tune or RecBole's HyperTuning; see recbole_mmssl/hyper.py.

    python run_hyper.py --model=MMSSL --dataset=tiktok --data_path=DIR --params_file=hyper.test --tool=ray
    python run_hyper.py --model=MMSSL --dataset=tiktok --data_path=DIR --params_file=hyper.test --tool=hyperopt
    python run_hyper.py ... --tool=ray --ray_address=HOST:PORT      # join a running Ray cluster

Errors print ``error:`` / ``fix:`` lines and exit with code 2 (``--debug`` shows the traceback).
"""

import sys

from recbole_mmssl.hyper import main

if __name__ == "__main__":
    sys.exit(main())
