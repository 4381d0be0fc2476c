"""What SageMaker's training toolkit makes of an /opt/ml tree: the program's command and environment.

The SageMaker framework images start a job with the toolkit's `train` command (the
sagemaker-training package). It reads `input/config/*.json`, installs the code's
requirements.txt, and starts the `sagemaker_program` with arguments and environment variables
derived from those files. The docker backend runs the real toolkit; the process backend starts
the program itself, so it reproduces the toolkit's derivation here, and tests/test_toolkit.py
holds the two equal by running the real toolkit on the same request in a container.

The rules, as sagemaker-training 4.8.0 implements them (environment.read_hyperparameters,
environment.Environment, mapping.to_cmd_args and to_env_vars, process.check_error):

* every hyperparameter value is JSON-decoded on its own; a value that is not JSON stays the raw string;
* keys starting with `sagemaker_` (and `_tuning_objective_metric`) are the toolkit's; unknown ones
  land in SM_FRAMEWORK_PARAMS, the rest are user hyperparameters;
* user hyperparameters become arguments sorted by key, `--key value` (`-k` for a one-letter key),
  each value as `str()` of the decoded JSON (`true` -> `True`, `null` -> empty, a dict -> `k=v,k=v`);
  the toolkit strips `"` from both ends of the last argument;
* the environment gains SM_<NAME> for every property of the training environment (strings as
  they are, None as empty, anything else as compact sorted JSON), SM_HP_<KEY> per hyperparameter,
  SM_CHANNEL_<NAME> per channel, CURRENT_HOST, SAGEMAKER_JOB_NAME, SAGEMAKER_REGION and a
  PYTHONPATH that starts with the code directory; the program runs in the code directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PREFIX = "sagemaker_"
# The toolkit's own hyperparameters (sagemaker_training.params.SAGEMAKER_HYPERPARAMETERS): consumed,
# never passed on; any other sagemaker_* key is an "additional framework parameter".
TOOLKIT_KEYS = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_region",
        "sagemaker_container_log_level",
        "sagemaker_job_name",
        "default_user_module_name",
        "_tuning_objective_metric",
        "sagemaker_s3_output",
    }
)
# The training environment's properties that become SM_<NAME> variables as they are
# (environment.Environment.to_env_vars); hps, framework_params, channels, training_env and
# user_args are derived, channel_<name> and hp_<key> come one per channel and hyperparameter.
ENV_PROPERTIES = (
    "hosts",
    "network_interface_name",
    "user_entry_point",
    "resource_config",
    "input_data_config",
    "output_data_dir",
    "current_host",
    "current_instance_type",
    "current_instance_group",
    "current_instance_group_hosts",
    "instance_groups",
    "instance_groups_dict",
    "distribution_instance_groups",
    "is_hetero",
    "module_name",
    "log_level",
    "framework_module",
    "input_dir",
    "input_config_dir",
    "output_dir",
    "num_cpus",
    "num_gpus",
    "num_neurons",
    "model_dir",
    "module_dir",
    "output_intermediate_dir",
)
DEFAULT_GROUP = "homogeneousCluster"
LOG_LEVEL_INFO = 20


def decode_hyperparameters(raw: dict[str, Any]) -> dict[str, Any]:
    """Decode each hyperparameter value as JSON on its own; a value that is not JSON stays as given."""
    decoded = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except (ValueError, TypeError):
            decoded[key] = value
    return decoded


def split_hyperparameters(decoded: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the toolkit's sagemaker_* keys, the user's hyperparameters) of decoded hyperparameters."""
    toolkit = {k: v for k, v in decoded.items() if k in TOOLKIT_KEYS or k.startswith(PREFIX)}
    return toolkit, {k: v for k, v in decoded.items() if k not in toolkit}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def to_cmd_args(hyperparameters: dict[str, Any]) -> list[str]:
    """User hyperparameters as the program's arguments: sorted `--key value` pairs (`-k` for one letter)."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        name = _text(key)
        value = hyperparameters[key]
        if hasattr(value, "items"):
            value = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        args += [f"--{name}" if len(name) > 1 else f"-{name}", _text(value)]
    return args


def env_value(value: Any) -> str:
    """One environment value as the toolkit writes it: strings as they are, None empty, else compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def training_environment(base: Path, env: dict[str, str], num_cpus: int) -> dict[str, Any]:
    """The toolkit's training environment (SM_TRAINING_ENV) for the /opt/ml tree at `base`.

    `env` is the environment the container starts with (image, request and platform variables);
    `num_cpus` is what the toolkit reads from multiprocessing.cpu_count() (the host's cores,
    whatever a CPU quota says). Paths are under `base` (/opt/ml in a container).
    """
    config = base / "input" / "config"
    resources = _read(config / "resourceconfig.json")
    channels = _read(config / "inputdataconfig.json")
    toolkit, user = split_hyperparameters(decode_hyperparameters(_read(config / "hyperparameters.json")))
    extra = {k: v for k, v in toolkit.items() if k not in TOOLKIT_KEYS}
    groups_config = resources.get("instance_groups", [])
    group = resources.get("current_group_name", DEFAULT_GROUP)
    groups = [g["instance_group_name"] for g in groups_config]
    distribution_groups = extra.get("sagemaker_distribution_instance_groups", [])
    if groups_config:
        distribution_hosts = [
            h for g in groups_config if g["instance_group_name"] in distribution_groups for h in g["hosts"]
        ]
    else:
        distribution_hosts = list(resources["hosts"])
    master = (distribution_hosts or resources["hosts"])[0]
    program = toolkit.get("sagemaker_program")
    model_parallel = env.get("SM_HP_MP_PARAMETERS")
    return {
        "additional_framework_parameters": extra,
        "channel_input_dirs": {name: str(base / "input" / "data" / name) for name in channels},
        "current_host": resources["current_host"],
        "current_instance_group": group,
        "current_instance_group_hosts": next(
            (g["hosts"] for g in groups_config if g["instance_group_name"] == group), []
        ),
        "current_instance_type": resources.get("current_instance_type", "local"),
        "distribution_hosts": distribution_hosts,
        "distribution_instance_groups": distribution_groups,
        "framework_module": env.get("SAGEMAKER_TRAINING_MODULE"),
        "hosts": resources["hosts"],
        "hyperparameters": user,
        "input_config_dir": str(config),
        "input_data_config": channels,
        "input_dir": str(base / "input"),
        "instance_groups": groups,
        "instance_groups_dict": {g["instance_group_name"]: g for g in groups_config},
        "is_hetero": len(groups) > 1,
        "is_master": resources["current_host"] == master,
        "is_modelparallel_enabled": model_parallel and model_parallel != "{}",
        "is_smddpmprun_installed": False,
        "is_smddprun_installed": False,
        "job_name": env.get("TRAINING_JOB_NAME"),
        "log_level": toolkit.get("sagemaker_container_log_level", LOG_LEVEL_INFO),
        "master_hostname": master,
        "model_dir": str(base / "model"),
        "module_dir": str(toolkit.get("sagemaker_submit_directory", base / "code")),
        "module_name": program[:-3] if isinstance(program, str) and program.endswith(".py") else program,
        "network_interface_name": resources.get("network_interface_name", "eth0"),
        "num_cpus": num_cpus,
        "num_gpus": 0,
        "num_neurons": 0,
        "output_data_dir": str(base / "output" / "data"),
        "output_dir": str(base / "output"),
        "output_intermediate_dir": str(base / "output" / "intermediate"),
        "resource_config": resources,
        "user_entry_point": program,
    }


def program_environment(base: Path, env: dict[str, str], num_cpus: int) -> dict[str, str]:
    """`env` plus every variable the toolkit sets before it starts the program (see the module docstring)."""
    training = training_environment(base, env, num_cpus)
    toolkit, _ = split_hyperparameters(
        decode_hyperparameters(_read(base / "input" / "config" / "hyperparameters.json"))
    )
    variables: dict[str, Any] = {key: training[key] for key in ENV_PROPERTIES}
    variables |= {
        "hps": training["hyperparameters"],
        "framework_params": training["additional_framework_parameters"],
        "channels": sorted(training["channel_input_dirs"]),
        "training_env": training,
        "user_args": to_cmd_args(training["hyperparameters"]),
    }
    variables |= {f"channel_{name}": path for name, path in training["channel_input_dirs"].items()}
    variables |= {f"hp_{key}": value for key, value in training["hyperparameters"].items()}
    result = dict(env)
    result |= {f"SM_{str(key).upper()}": env_value(value) for key, value in variables.items()}
    result["SAGEMAKER_JOB_NAME"] = _text(toolkit.get("sagemaker_job_name", ""))
    result["CURRENT_HOST"] = training["current_host"]
    result["SAGEMAKER_REGION"] = _text(toolkit.get("sagemaker_region") or env.get("AWS_DEFAULT_REGION", ""))
    code = str(base / "code")
    result["PYTHONPATH"] = os.pathsep.join([code, *filter(None, [env.get("PYTHONPATH")])])
    return result


def program_command(python: str, base: Path) -> list[str]:
    """The command the toolkit runs for a Python program: interpreter, program, arguments (last one unquoted)."""
    training = training_environment(base, {}, 1)
    command = [python, training["user_entry_point"], *to_cmd_args(training["hyperparameters"])]
    command[-1] = command[-1].strip('"')
    return command
