"""Lists of choices come from the registries: a config comment or a flag's help that names the choices of a field
names exactly the registered ones (an unregistered name, or a registered one left out, fails here). The docs' tables
are checked in test_readme.py."""

import ast
import glob
import os
import re

import pytest

from jgen import cli
from jgen.config import base_config
from jgen.data import SOURCES
from jgen.data.text import EVAL_SPLITS, TEXT_UNITS
from jgen.diffusion import SAMPLERS, SCHEDULES, SPACINGS
from jgen.diffusion.parameterization import LOSS_WEIGHTINGS, PARAMETERIZATIONS
from jgen.diffusion.schedules import TIME_SAMPLINGS
from jgen.gan.losses import LOSSES
from jgen.methods import get_method, method_names
from jgen.methods.gmm import COVARIANCE_TYPES, EM_MODES
from jgen.methods.vae import LIKELIHOODS
from jgen.metrics.feature_nets import FEATURE_NETS, feature_net_names
from jgen.nn.backbones import backbone_names
from jgen.nn.transformer import POSITIONS
from tests.conftest import ROOT

# the feature networks jgen registers itself (tests register stand-ins of their own beside them)
JGEN_FEATURE_NETS = sorted(
    n for n, s in FEATURE_NETS.items() if s.load is None or s.load.__module__.startswith("jgen.")
)
# config field -> its registered choices (a field whose comment lists choices must be here)
FIELD_CHOICES = {
    "sampler": sorted(SAMPLERS),
    "spacing": [*SPACINGS, "default"],
    "schedule": SCHEDULES,
    "parameterization": PARAMETERIZATIONS,
    "loss_weighting": LOSS_WEIGHTINGS,
    "time_sampling": TIME_SAMPLINGS,
    "loss": LOSSES,
    "covariance_type": COVARIANCE_TYPES,
    "em": EM_MODES,
    "likelihood": LIKELIHOODS,
    "positions": POSITIONS,
    "text_unit": TEXT_UNITS,
    "test_split": EVAL_SPLITS,
    "name": sorted(SOURCES),  # data.name (method.name's choices are the methods: no comment lists them)
    "feature_net": JGEN_FEATURE_NETS,
    "kind": backbone_names(),  # the diffusion families' model.kind (the autoencoders' kinds are listed nowhere)
}
# where config fields are set with a comment: the experiment files, the core defaults, each method's defaults()
CONFIG_FILES = sorted(glob.glob(os.path.join(ROOT, "experiments", "configs", "*.py"))) + [
    os.path.join(ROOT, "jgen", "config.py"),
    *sorted(glob.glob(os.path.join(ROOT, "jgen", "methods", "*.py"))),
]
ASSIGNMENT = re.compile(r"""(?:\.|\b|")(\w+)"?\s*[=:]\s*[^#]+#\s*(.*)$""")


def listed_choices(comment: str) -> list[str] | None:
    """The choices a comment lists as `a | b (why) | c`, or None if it lists none."""
    if " | " not in comment:
        return None
    return [part.strip().split()[0].strip("`'\",") for part in comment.split(" | ")]


def config_comments() -> list[tuple[str, int, str, list[str]]]:
    out = []
    for path in CONFIG_FILES:
        for i, line in enumerate(open(path).read().splitlines(), 1):
            m = ASSIGNMENT.search(line)
            if m and (choices := listed_choices(m.group(2))) is not None:
                out.append((os.path.relpath(path, ROOT), i, m.group(1), choices))
    return out


def test_the_comment_parser_reads_choices():
    assert listed_choices("eps | v | x0 (data) | flow") == ["eps", "v", "x0", "flow"]
    assert listed_choices("0: unconditional, 1: conditional") is None
    assert ASSIGNMENT.search('    c.method.sampler = "ddim"  # ddim | ddpm').group(1) == "sampler"
    assert ASSIGNMENT.search('            name="mnist",  # mnist | digits').group(1) == "name"
    assert len(config_comments()) >= 10  # the configs do list choices: this test reads them


@pytest.mark.parametrize("where,line,field,choices", config_comments(), ids=lambda v: str(v)[:40])
def test_config_comments_list_exactly_the_registered_choices(where, line, field, choices):
    assert field in FIELD_CHOICES, f"{where}:{line}: a comment lists choices of {field!r}: add its registry here"
    assert sorted(choices) == sorted(FIELD_CHOICES[field]), f"{where}:{line}: {field} choices {choices}"


def test_every_method_default_is_one_of_its_registered_choices():
    for name in method_names():
        section = get_method(name).defaults().method
        for field, value in section.items():
            if field in FIELD_CHOICES and field != "name":
                assert value in FIELD_CHOICES[field], (name, field, value)
    assert base_config().data.name in FIELD_CHOICES["name"] and base_config().eval.feature_net in feature_net_names()


@pytest.mark.parametrize("flag,field", [("sampler", "sampler"), ("spacing", "spacing"), ("feature_net", "feature_net")])
def test_flag_help_lists_exactly_the_registered_choices(flag, field):
    listed = re.search(r"one of ([\w, ]+?);", cli.FLAGS[flag].help).group(1).split(", ")
    assert sorted(listed) == sorted(c for c in FIELD_CHOICES[field] if c != "default"), cli.FLAGS[flag].help


def test_the_sampling_flags_are_the_options_methods_take():
    taken = {o for n in method_names() for o in get_method(n).generate_options}
    assert set(cli.SAMPLING_FLAGS) == taken & set(cli.FLAGS)
    assert {"sampler", "steps", "guidance", "temperature"} <= set(cli.SAMPLING_FLAGS)


def test_no_python_file_reads_choices_from_a_hand_written_list_of_samplers():
    names = sorted(SAMPLERS)
    for path in glob.glob(os.path.join(ROOT, "jgen", "**", "*.py"), recursive=True):
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 4:
                strings = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                assert not (len(strings) >= 4 and set(strings) <= set(names)), f"{path}: a list of samplers {strings}"
