"""The user-error exceptions of every command.

Every bad-input error says three things: where (a file, or a config key and where its value came
from), what is wrong, and how to fix it, so a user never has to read the code to recover. The
commands print them as one ``error:`` line and one ``fix:`` line and exit with code 2
(recbole_mmssl/cli.py); anything else is a programming error and keeps its traceback. They subclass
ValueError so callers that already catch RecBole's ValueErrors keep working.
"""


def shown(value):
    """``repr`` of a token or number as the user wrote it (``'a'``, ``3``): NumPy 2 writes its scalars
    as ``np.str_('a')`` / ``np.int64(3)``, and tokens taken from arrays or pandas columns are such."""
    return repr(value.item() if hasattr(value, "item") else value)


class UserError(ValueError):
    """Bad input of any kind: ``where`` names the file or key, ``problem`` and ``fix`` say the rest."""

    def __init__(self, where, problem, fix):
        self.where = str(where)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.where}: {problem}\n  fix: {fix}")


class DataError(UserError):
    """Bad or missing input data (or checkpoint); the message names the file, the problem and the fix."""

    def __init__(self, path, problem, fix):
        self.path = str(path)
        super().__init__(path, problem, fix)


class NotMultimodalError(DataError):
    """A multimodal model given a dataset that carries no modality features (a plain RecBole Dataset)."""

    def __init__(self, dataset):
        super().__init__(getattr(dataset, "dataset_path", "?"),
                         f"dataset is a {type(dataset).__name__}, which carries no modality features",
                         "build it with recbole_mmssl.data.dataset.MultimodalDataset")


class ConfigError(UserError):
    """A bad config key or value; names the key and where it was set (command line, file and line)."""

    def __init__(self, key, problem, fix, source=None):
        self.key = key
        self.source = source
        where = f"`{key}`" + (f" ({source})" if source else "")
        super().__init__(where, problem, fix)


class UsageError(UserError):
    """A command line that cannot be parsed (missing or malformed option)."""

    def __init__(self, where, problem, fix="see --help for the options"):
        super().__init__(where, problem, fix)


def read_utf8_text(path, missing, folder, fix, missing_fix=None, folder_fix=None, utf8_fix=None,
                   line_in_path=True):
    """The whole text of a user's file (without a UTF-8 byte-order mark), or a DataError naming the
    file and, for bad bytes, the line.

    Every command reads some small user file (config, parameter, --users, item table); this is the
    one place that turns a missing file, a folder or non-UTF-8 bytes into the error/fix lines.
    ``missing`` / ``folder`` are the problems to report; ``line_in_path`` puts "line N" after the
    path (``PATH line N: not UTF-8 text (byte B)``), else in the problem (``(byte B, line N)``).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(path, missing, missing_fix or fix) from None
    except IsADirectoryError:
        raise DataError(path, folder, folder_fix or fix) from None
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark is not part of the first line
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        if line_in_path:
            raise DataError(f"{path} line {line}", f"not UTF-8 text (byte {err.start})", utf8_fix or fix) from None
        raise DataError(path, f"not UTF-8 text (byte {err.start}, line {line})", utf8_fix or fix) from None

