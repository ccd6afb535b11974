"""recbole-mmssl: MMSSL (Wei et al., WWW 2023) as a plugin model for RecBole."""

import importlib.util

from recbole_mmssl.threads import prepare_environment as _prepare_thread_environment

# Before torch/numpy load: their worker threads' wait policy is read once, at load (threads.py).
_prepare_thread_environment()

if importlib.util.find_spec("recbole") is None:
    raise ImportError(
        "RecBole 1.2.1 is not installed. On Python 3.12 and newer pip cannot install it together with "
        "its dependencies (it requires ray<=2.6.3, which has no wheels there): install it alone with "
        "`pip install --no-deps recbole==1.2.1` (this package's setup.py installs the rest)."
    )

# RecBole 1.2.1's fixes for today's NumPy, SciPy and pandas (compat.py), each applied when its
# library is first imported, so before any RecBole code runs.
from recbole_mmssl import compat as _compat  # noqa: E402

_compat.apply()

__version__ = "0.1.0"
