import pytest

from jgen.config import ConfigError, base_config, identity_mismatches, validate
from tests.conftest import tiny_config


def test_valid_tiny_config_passes():
    validate(tiny_config(), num_devices=1)


@pytest.mark.parametrize("field,value,needle", [
    ("data.name", "cifar11", "unknown dataset"),
    ("optim.learning_rate", -1e-3, "learning_rate=-0.001"),
    ("method.name", "flow", "unknown method"),
    ("train.steps", 0, "train.steps=0"),
    ("train.ema_decay", 1.5, "ema_decay"),
    ("optim.schedule", "linear", "choose one of"),
])
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
    with pytest.raises(ConfigError, match=r"data.batch_size=36 .*divisible by the number of devices \(8\).*batch_size=32"):
        validate(c, num_devices=8)


def test_identity_mismatch_lists_differences():
    a, b = tiny_config().to_dict(), tiny_config().to_dict()
    b["model"]["features"] = (4, 4)
    b["train"]["steps"] = 999  # not an identity field
    bad = identity_mismatches(a, b)
    assert bad == ["model.features: checkpoint has (32,), config has (4, 4)"]


def test_base_config_has_no_method():
    with pytest.raises(ConfigError, match="method.name"):
        validate(base_config(), num_devices=1)
