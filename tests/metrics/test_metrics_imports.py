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
