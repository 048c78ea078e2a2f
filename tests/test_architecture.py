"""The import contracts of .importlinter hold: protocols know nothing of projects, tasks or runs; models import
no views or forms; the run core is layered without cycles. Run here so `make test` (and CI) fails when one
breaks; `.venv/bin/lint-imports` shows the same report by hand."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINT_IMPORTS = pathlib.Path(sys.executable).parent / "lint-imports"


def lint(*config):
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *map(str, config)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_the_import_contracts_hold():
    result = lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_a_broken_contract_fails_the_check(tmp_path):
    """The check is not vacuous: an import that breaks a contract (runs.models does import tasks.models) fails."""
    config = tmp_path / "broken.ini"
    config.write_text("[importlinter]\nroot_packages =\n    runs\n    tasks\n\n"
                      "[importlinter:contract:x]\nname = runs.models imports nothing of tasks\ntype = forbidden\n"
                      "source_modules =\n    runs.models\nforbidden_modules =\n    tasks.models\n")
    result = lint(config)
    assert result.returncode != 0
    assert "runs.models -> tasks.models" in result.stdout
