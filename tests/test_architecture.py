"""The import contracts of .importlinter hold: protocols know nothing of projects, tasks or runs; models import
no views or forms; the run core is layered without cycles. Run here so `make test` (and CI) fails when one
breaks; `.venv/bin/lint-imports` shows the same report by hand."""
import ast
import configparser
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


def run_core_modules():
    """The modules the run-core contract layers, as named in .importlinter."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    layers = config["importlinter:contract:run-core"]["layers"]
    return sorted(name.strip() for line in layers.splitlines() for name in line.split("|") if name.strip())


def imports_inside_functions(path, own_packages):
    """(line, module) of every import of the project's own packages inside a function of `path` that has no
    comment on the line above it saying why it is there."""
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and inner.level == 0:
                names = [inner.module]
            elif isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            else:
                continue
            explained = lines[inner.lineno - 2].strip().startswith("#")
            found += [(inner.lineno, name) for name in names
                      if name.split(".")[0] in own_packages and not explained]
    return found


def test_the_run_core_hides_no_import_in_a_function():
    """An import inside a function can hide a cycle from a reader; in the run core each one needs a comment
    saying why it cannot be at the top (Django's AppConfig.ready, a third-party cycle)."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    own_packages = set(config["importlinter"]["root_packages"].split())
    modules = run_core_modules()
    assert "runs.execution" in modules and "tasks.models" in modules
    hidden = {}
    for module in modules:
        path = ROOT / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = path.with_suffix("") / "__init__.py"
        if imports_inside_functions(path, own_packages):
            hidden[module] = imports_inside_functions(path, own_packages)
    assert hidden == {}


def test_the_hidden_import_check_finds_one(tmp_path):
    """The check is not vacuous: a module that imports the run core inside a function is reported."""
    module = tmp_path / "sample.py"
    module.write_text("import runs\n\n\ndef stage():\n    from runs.models import Run\n\n    # Needed: a cycle.\n"
                      "    from tasks import models\n    return Run, models\n")
    assert imports_inside_functions(module, {"runs", "tasks"}) == [(5, "runs.models")]
