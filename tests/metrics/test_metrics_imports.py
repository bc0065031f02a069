import subprocess
import sys


def test_training_imports_do_not_pull_in_scipy_and_public_names_still_import():
    """`import jgen.methods` (the training path) must not import scipy; every public name of jgen.metrics
    still imports, and `kid` is the function even after its submodule was imported by another module."""
    code = (
        "import sys, jgen.methods; assert 'scipy' not in sys.modules, 'scipy on the training path'; "
        "import jgen.metrics.sample_metrics; import jgen.metrics as m; "
        "from jgen.metrics import kid; assert callable(kid), kid; "
        "[getattr(m, n) for n in m.__all__]; assert 'scipy' in sys.modules"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def test_the_feature_net_registry_is_complete_without_the_run_layer():
    """The built-in feature networks are registered where their registry is defined: a fresh interpreter that
    imports only jgen.metrics knows both names, without the run layer or any method."""
    code = (
        "import sys; from jgen.metrics.feature_nets import feature_net_names; "
        "assert not [m for m in sys.modules if m.startswith(('jgen.run', 'jgen.methods'))]; "
        "print(feature_net_names())"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "['inception', 'mnist_classifier']"
