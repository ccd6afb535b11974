"""recbole-mmssl: MMSSL (Wei et al., WWW 2023) as a plugin model for RecBole."""

from recbole_mmssl.threads import prepare_environment as _prepare_thread_environment

# Before torch/numpy load: their worker threads' wait policy is read once, at load (threads.py).
_prepare_thread_environment()

__version__ = "0.1.0"
