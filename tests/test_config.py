import glob
import importlib.util
import os

import pytest

from jgen.config import ConfigError, base_config, identity_mismatches
from jgen.methods import get_method, method_names
from jgen.run import default_config, load_config, validate, with_defaults
from tests.conftest import ROOT, tiny_config


@pytest.mark.parametrize("name", [m for m in method_names() if m != "latent_diffusion"])
def test_every_method_default_config_validates_and_owns_its_section(name):
    c = default_config(name)
    validate(c, num_devices=1)
    defaults = get_method(name).defaults()
    assert c.method.name == name
    assert set(defaults.method) <= set(c.method) and set(defaults.model) <= set(c.model)
    # a config that only names the method is completed with the same defaults
    bare = base_config()
    bare.method.name = name
    assert with_defaults(bare).method.to_dict() == c.method.to_dict()


def test_latent_diffusion_needs_its_first_stage():
    with pytest.raises(ConfigError, match="method.first_stage_workdir=''.*ldm_autoencoder"):
        validate(default_config("latent_diffusion"), num_devices=1)


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("data.name", "cifar11", "unknown dataset"),
        ("optim.learning_rate", -1e-3, "learning_rate=-0.001"),
        ("method.name", "flow", "unknown method"),
        ("train.steps", 0, "train.steps=0"),
        ("train.ema_decay", 1.5, "ema_decay"),
        ("optim.schedule", "linear", "choose one of"),
        ("method.likelihood", "poisson", "choose one of"),
        ("eval.feature_net", "vgg", "choose one of"),
        (
            "data.worker_count",
            -1,
            "worker_count=-1 is invalid: must be an integer >= 0. Fix: --config.data.worker_count=0",
        ),
        ("data.worker_buffer_size", 0, "must be an integer >= 1. Fix: --config.data.worker_buffer_size=1"),
        ("data.read_ahead", -3, "data.read_ahead=-3 is invalid: must be an integer >= 0"),
    ],
)
def test_validation_names_field_value_and_allowed(field, value, needle):
    c = tiny_config()
    section, key = field.split(".")
    c[section][key] = value
    with pytest.raises(ConfigError) as e:
        validate(c, num_devices=1)
    assert field in str(e.value) and needle in str(e.value)


def test_batch_not_divisible_by_devices_suggests_a_fix():
    c = tiny_config()
    c.data.batch_size = 36
    with pytest.raises(
        ConfigError, match=r"data.batch_size=36 .*divisible by the number of devices \(8\).*batch_size=32"
    ):
        validate(c, num_devices=8)


def test_identity_mismatch_lists_differences():
    a, b = tiny_config().to_dict(), tiny_config().to_dict()
    b["model"]["features"] = (4, 4)
    b["train"]["steps"] = 999  # not an identity field
    bad = identity_mismatches(a, b)
    assert bad == ["model.features: checkpoint has (32,), config has (4, 4)"]


def test_compute_fields_may_change_on_resume():
    """model.dtype and model.remat change how the network computes, not the checkpoint: no identity mismatch."""
    a, b = with_defaults(tiny_config("diffusion")).to_dict(), with_defaults(tiny_config("diffusion")).to_dict()
    b["model"].update(dtype="bfloat16", remat=True)
    assert identity_mismatches(a, b) == []
    b["model"]["channels"] = 4
    assert identity_mismatches(a, b) == ["model.channels: checkpoint has 16, config has 4"]


def test_base_config_has_no_method():
    with pytest.raises(ConfigError, match="method.name"):
        validate(base_config(), num_devices=1)


def test_load_config_applies_overrides_like_the_command_line():
    c = load_config(
        f"{ROOT}/experiments/configs/vae_mnist.py",
        ["train.steps=7", "method.likelihood=gaussian", "model.features=(4, 8)"],
    )
    assert c.train.steps == 7 and c.method.likelihood == "gaussian" and tuple(c.model.features) == (4, 8)
    with pytest.raises(ConfigError, match="field=value"):
        load_config(f"{ROOT}/experiments/configs/vae_mnist.py", ["train.steps"])


def test_every_experiment_config_file_loads_and_validates():
    """Each file in experiments/configs builds its config, and every one that trains through `jgen train` (it
    names a method; the GAN toys run from experiments/gan_toys.py) validates as it is."""
    paths = sorted(glob.glob(os.path.join(ROOT, "experiments", "configs", "*.py")))
    validated = []
    for path in paths:
        if os.path.basename(path) == "__init__.py":
            continue
        spec = importlib.util.spec_from_file_location("experiment_config", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if "method" in module.get_config():
            validate(load_config(path), num_devices=1)
            validated.append(os.path.basename(path))
    assert {"ddpm_mnist.py", "flow_mnist.py", "vae_mnist.py"} <= set(validated) and len(validated) >= 12, validated
