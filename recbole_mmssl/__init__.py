"""recbole-mmssl: MMSSL (Wei et al., WWW 2023) as a plugin model for RecBole."""

__version__ = "0.1.0"
