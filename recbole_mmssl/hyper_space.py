"""The parameter file of a search (RecBole's hyper.test format) and every check made before its first trial.

A search that fails in trial 1 (or, worse, runs every trial at values nobody meant) costs hours. So
before any trial: each line of the parameter file is parsed (errors name the file and line); each
parameter must be a key the model reads; every value it can draw must pass the key's own type and
range check (both ends of a range, integers for integer keys); RecBole's loguniform bounds are
exponents, so bounds that look like the values themselves (both in (0, 1)) are refused with the
exponent form in the fix; the fixed settings and the data pass a run's own checks; hyperopt's
algorithm fits the space; a Ray cluster to join answers within seconds.
"""

import math
import os
import socket
import sys

import yaml

from recbole_mmssl.config import Config
from recbole_mmssl.config_rules import CHECKS
from recbole_mmssl.errors import ConfigError, DataError, UsageError, read_utf8_text
from recbole_mmssl.quick_start import preflight

KINDS = {"choice": None, "uniform": 2, "loguniform": 2, "quniform": 3}  # kind -> number of values
LARGEST_EXPONENT = math.log(sys.float_info.max)  # exp() of more overflows


def _numbers(values):
    """YAML 1.1 reads 1e-4 (no dot) as a string: make such choices numbers, as RecBole would."""
    if not isinstance(values, list):
        return values
    out = []
    for v in values:
        try:
            out.append(float(v) if isinstance(v, str) else v)
        except ValueError:
            out.append(v)
    return out


def read_space(params_file, lines=None):
    """RecBole's hyper.test format: ``name type values`` per line (choice / uniform / loguniform / quniform).

    Every malformed line is a DataError naming the file and line. ``lines``, if given, receives
    {name: line number} (for the errors of later checks).
    """
    fix = "write one `name type values` line per parameter, e.g. `learning_rate choice [1e-3,5e-4]` or " \
          "`dropout uniform 0.1,0.5` (types: choice, uniform, loguniform, quniform)"
    text = read_utf8_text(params_file, "parameter file not found", "is a folder, not a parameter file", fix,
                          missing_fix="pass --params_file=FILE (e.g. hyper.test)", folder_fix="pass --params_file=FILE",
                          utf8_fix="save the parameter file as UTF-8")
    space, seen = {}, {} if lines is None else lines
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or line.lstrip().startswith("#"):
            continue
        where = f"{params_file} line {number}"
        if len(parts) < 3:
            raise DataError(where, f"{line.strip()!r} has no values", fix)
        name, kind, value = parts[0], parts[1], "".join(parts[2:])
        if kind not in KINDS:
            raise DataError(where, f"unknown type {kind!r}", fix)
        if name in space:
            raise DataError(where, f"`{name}` is already searched on line {seen[name]}", "keep one line per parameter")
        if kind == "choice":
            try:
                values = yaml.safe_load(value)
            except yaml.YAMLError as err:
                raise DataError(where, f"the choices are not a valid list ({getattr(err, 'problem', err)})",
                                "write the choices as a list, e.g. [0.1,0.2] or ['a','b']") from None
            if not isinstance(values, list) or not values:
                raise DataError(where, "choice needs a non-empty list", "write the choices as a list, e.g. [0.1,0.2]")
            space[name] = ("choice", _numbers(values))
        else:
            try:
                bounds = [float(v) for v in value.split(",")]
            except ValueError:
                raise DataError(where, f"{value!r} are not numbers", fix) from None
            if len(bounds) != KINDS[kind] or not all(math.isfinite(b) for b in bounds) or bounds[0] >= bounds[1] \
                    or (kind == "quniform" and bounds[2] <= 0):
                expected = "low,high" if KINDS[kind] == 2 else "low,high,q with q > 0"
                raise DataError(where, f"{kind} takes {expected} with low < high, got {value!r}", fix)
            if kind == "loguniform" and bounds[1] > LARGEST_EXPONENT:
                raise DataError(where, f"loguniform draws up to exp({bounds[1]:g}), beyond the largest float (about "
                                       "1.8e308): RecBole's loguniform bounds are the natural logs of the values",
                                f"write the natural logs of the values you mean, e.g. `{name} loguniform -9.21,-4.61` "
                                "for 1e-4..1e-2")
            space[name] = (kind, bounds)
        seen[name] = number
    if not space:
        raise DataError(params_file, "defines no parameter", fix)
    return space


def candidate_values(kind, value):
    """The values a search can draw that are worth checking: every choice, or both ends of a range
    (quniform rounds its ends to multiples of q, as hyperopt and Ray do)."""
    if kind == "choice":
        return list(value)
    if kind == "loguniform":
        return [math.exp(value[0]), math.exp(value[1])]
    if kind == "quniform":
        low, high, q = value
        return [float(round(low / q) * q), float(round(high / q) * q)]
    return [value[0], value[1]]


def _exponent_form(name, value):
    """The loguniform line that draws between the positive ``value`` bounds."""
    return f"write `{name} loguniform {math.log(value[0]):.4g},{math.log(value[1]):.4g}` (the natural logs of " \
           f"{value[0]:g} and {value[1]:g})"


def _takes_integers(name, defaults):
    check = CHECKS.get(name)
    if check is not None:
        return check.kind == "int"
    default = defaults.get(name)
    return isinstance(default, int) and not isinstance(default, bool)


def check_search(space, lines, params_file, fixed):
    """Before any trial: the values of :func:`check_values`, and the fixed settings and data pass a run's
    own checks (with the first value of each parameter)."""
    check_values(space, lines, params_file, fixed)
    first = {name: candidate_values(kind, value)[0] for name, (kind, value) in space.items()}
    preflight(fixed["model"], fixed["dataset"], fixed["config_files"], {**fixed["config_dict"], **first},
              fixed["cmd_args"])


def check_values(space, lines, params_file, fixed):
    """Every parameter is a known key, every value it can draw is in the key's range (integers for
    integer keys); no data is read. Errors are ConfigErrors naming the parameter file's line.
    RecBole's loguniform bounds are exponents: bounds that look like the values themselves are refused
    with the exponent form in the fix."""
    base = dict(fixed["config_dict"])
    defaults = Config(model=fixed["model"], dataset=fixed["dataset"], config_file_list=fixed["config_files"],
                      config_dict=base, cmd_args=fixed["cmd_args"]).final_config_dict
    for name, (kind, value) in space.items():
        where = f"{params_file} line {lines[name]}"
        if kind == "loguniform" and all(0 < v < 1 for v in value):
            raise ConfigError(name, f"loguniform {value[0]:g},{value[1]:g} looks like the values themselves, but "
                                    f"RecBole's loguniform bounds are exponents: it would draw "
                                    f"{math.exp(value[0]):.4g}..{math.exp(value[1]):.4g}",
                              _exponent_form(name, value), where)
        if _takes_integers(name, defaults) and (kind in ("uniform", "loguniform") or
                                                (kind == "quniform" and float(value[2]) != int(value[2]))):
            raise ConfigError(name, f"{kind} draws fractional values, but `{name}` takes integers",
                              f"write `{name} quniform LOW,HIGH,1` or `{name} choice [...]`", where)
        for candidate in candidate_values(kind, value):
            try:
                Config(model=fixed["model"], dataset=fixed["dataset"], config_file_list=fixed["config_files"],
                       config_dict={**base, name: candidate}, cmd_args=fixed["cmd_args"])
            except ConfigError as err:
                if err.key != name:
                    raise
                fix = err.fix
                if kind == "loguniform":
                    fix = "RecBole's loguniform bounds are natural logs of the values: " + (
                        f"if {value[0]:g}..{value[1]:g} are the values, {_exponent_form(name, value)}"
                        if all(v > 0 for v in value) else "choose LOW,HIGH whose exp lies in the key's range") \
                        + f" ({err.fix})"
                problem = f"{kind} {','.join(f'{v:g}' for v in value)} can draw {candidate:.4g}: {err.problem}" \
                    if kind != "choice" else err.problem
                raise ConfigError(name, problem, fix, where) from None


ALGOS = ("exhaustive", "random", "bayes")  # RecBole's HyperTuning (hyperopt)


def check_algo(algo, tool, space, lines, params_file):
    """``--algo`` is hyperopt's (Ray Tune samples at random); exhaustive search needs choices only."""
    if algo is None:
        return "random"
    if tool != "hyperopt" and algo != "random":
        raise UsageError(f"--algo={algo}", f"applies to --tool=hyperopt only; --tool={tool} samples at random",
                         "leave --algo out with --tool=ray, or use --tool=hyperopt")
    if algo == "exhaustive":
        ranged = [name for name, (kind, _) in space.items() if kind != "choice"]
        if ranged:
            raise DataError(f"{params_file} line {lines[ranged[0]]}", f"`{ranged[0]}` is a range, and an exhaustive "
                                                                      "search can only enumerate choices",
                            "write every parameter as `name choice [...]`, or use --algo=random or --algo=bayes")
    return algo


def check_ray_address(address, timeout=3.0):
    """Fail in seconds when nothing answers at ``--ray_address`` (Ray itself retries for minutes)."""
    fix = "start the cluster first (`ray start --head --port=PORT` on the head node), check HOST:PORT, or leave " \
          "--ray_address out to search on this machine"
    if address == "auto":
        if not os.path.exists(os.path.join(os.environ.get("RAY_TMPDIR", "/tmp"), "ray", "ray_current_cluster")):
            raise UsageError("--ray_address=auto", "no Ray cluster was started on this machine", fix)
        return address
    host, colon, port = address.split("://", 1)[-1].rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--ray_address={address}", "is not HOST:PORT", "pass e.g. --ray_address=10.0.0.1:6379")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise UsageError(f"--ray_address={address}", f"nothing answers at {host}:{port} "
                                                      f"({err.strerror or err or 'timed out'})", fix) from None
    return address
