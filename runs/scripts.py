"""Python scripts (a task's source or its processing step), each in its own cached virtual environment.

Dependencies come from the script's inline metadata (PEP 723 `# /// script` block), else a
requirements.txt beside it, else its imports (standard library and the package's own modules left out,
common import names mapped to their distributions: yaml -> PyYAML, sklearn -> scikit-learn, ...).
Environments are built with uv under ETL_DATA_DIR/envs/<hash of the sorted dependency set and the Python
version>: built in a temporary folder and renamed into place under a file lock, so two runs needing the
same environment build it once, and a later run only checks that it exists. Each use is recorded; the
system job "Remove unused script environments" deletes those no run has used for 30 days.

The contract with a script:
- argv: `sys.argv[1]` is the first input file; every input file follows, in order (none for a source).
- The working folder is the run's folder; stdout and stderr stream into the run log line by line.
- It runs in a sandbox (runs/sandbox.py, bubblewrap): it sees its run folder (read-write), its
  environment and the system (read-only), nothing else of ETL_DATA_DIR, and never runs as root.
- A non-zero exit status fails the step; the task's timeout (or a cancel) kills the script and every
  process it started, detached or not (the sandbox's PID namespace dies with it); so does its end.
- If the last line printed is a Python list of paths inside the run folder, those files become the
  output (relative paths are taken from the run folder); a path outside it is refused.
- It sees none of the portal's packages or environment, only these variables:
    PATH (the environment's bin first), VIRTUAL_ENV, HOME (/tmp/home; /tmp is private to the run),
    LANG and LC_ALL (C.UTF-8), TZ (the project's time zone)
    ETL_STEP                 "source" or "processing"
    ETL_TASK_ID, ETL_TASK_NAME, ETL_PROJECT_ID, ETL_PROJECT_NAME
    ETL_RUN_ID, ETL_RUN_ATTEMPT, ETL_RUN_TRIGGER, ETL_RUN_SCHEDULED_FOR (ISO 8601)
    ETL_RUN_FOLDER           the run's folder (also the working folder)
    ETL_INPUT_FILES          JSON list of the input files (the same as sys.argv[1:])
    ETL_OUTPUT_NAME          the task's output file name with parameters put in ("" when not set)
    ETL_PARAMS               JSON object of every parameter (task values override project values;
                             sensitive values too: the run log masks them if the script prints them)
    ETL_PARAM_<NAME>         each parameter; NAME upper-cased, characters other than A-Z, 0-9 become _
    ETL_SOURCE_KIND, ETL_SOURCE_NAME, ETL_SOURCE_HOST, ETL_SOURCE_PORT, ETL_SOURCE_USER,
    ETL_SOURCE_DATABASE, ETL_SOURCE_PATH, ETL_SOURCE_OPTIONS (JSON), and ETL_SOURCE_<SECRET> for each of
    its secrets (ETL_SOURCE_PASSWORD, ETL_SOURCE_PRIVATE_KEY, ETL_SOURCE_TOKEN, ...): the task's source
    connection, when it has one
    ETL_CONNECTIONS          JSON: {"source": {...} or null, "destinations": [{..., "folder", "overwrite"}]}
                             with the same fields (kind, name, host, port, user, database, path,
                             options, secrets)
"""
import ast
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from runs import sandbox, script_process
from runs.errors import PipelineError

PEP723 = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
IMPORT_TO_DISTRIBUTION = {
    "yaml": "PyYAML", "sklearn": "scikit-learn", "PIL": "Pillow", "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil", "cv2": "opencv-python-headless", "dotenv": "python-dotenv", "jwt": "PyJWT",
    "Crypto": "pycryptodome", "Cryptodome": "pycryptodomex", "OpenSSL": "pyOpenSSL", "magic": "python-magic",
    "docx": "python-docx", "pptx": "python-pptx", "serial": "pyserial", "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient", "jose": "python-jose", "attr": "attrs", "slugify": "python-slugify",
    "gitlab": "python-gitlab", "ldap": "python-ldap", "pkg_resources": "setuptools", "fitz": "PyMuPDF",
    "Levenshtein": "python-Levenshtein", "zmq": "pyzmq", "usb": "pyusb", "gnupg": "python-gnupg",
    "dns": "dnspython", "telegram": "python-telegram-bot", "smb": "pysmb", "nmb": "pysmb",
    "snowflake": "snowflake-connector-python", "pymssql": "pymssql", "win32com": "pywin32",
    "googleapiclient": "google-api-python-client", "xlrd": "xlrd", "fpdf": "fpdf2", "markdown": "Markdown",
    "multipart": "python-multipart", "socks": "PySocks", "stripe": "stripe", "tzlocal": "tzlocal",
}
OPTIONAL_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
REQUIREMENTS = "requirements.txt"
MARKER = "etl-environment.json"
LAST_USED = ".last-used"


@dataclass
class Dependencies:
    origin: str  # "inline metadata", "requirements.txt", "imports", "none"
    requirements: list  # requirement strings, sorted and normalized
    requirements_file: Path | None = None

    def summary(self):
        return ", ".join(self.requirements) if self.requirements else "no third-party packages"


# --- dependencies --------------------------------------------------------------------------------------

def normalize_requirement(text):
    text = " ".join(text.split())
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", text)
    if not match:
        return text
    name = re.sub(r"[-_.]+", "-", match.group(0)).lower()
    return name + text[match.end():]


def inline_metadata(source):
    """The dependencies of a PEP 723 `# /// script` block, or None when the script has none."""
    blocks = [match for match in PEP723.finditer(source) if match.group("type") == "script"]
    if not blocks:
        return None
    if len(blocks) > 1:
        raise PipelineError("The script has more than one `# /// script` metadata block", step="settings")
    content = "".join(line[2:] if line.startswith("# ") else line[1:]
                      for line in blocks[0].group("content").splitlines(keepends=True))
    try:
        metadata = tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise PipelineError(f"The script's `# /// script` metadata is not valid TOML: {exc}", step="settings") \
            from None
    dependencies = metadata.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(item, str) for item in dependencies):
        raise PipelineError("`dependencies` in the script's metadata must be a list of strings", step="settings")
    return dependencies


def requirements_lines(path):
    lines = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _optional_imports(tree):
    """Nodes of imports guarded by `try: ... except ImportError`: the script runs without them."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            names = set()
            for handler in node.handlers:
                kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                names.update(getattr(kind, "id", "BaseException") for kind in kinds)
            if names & OPTIONAL_IMPORT_ERRORS:
                guarded.update(id(child) for statement in node.body for child in ast.walk(statement))
    return guarded


def imported_modules(source):
    """Top-level names of the modules a script imports for sure (relative and guarded imports left out)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()  # the script will fail to run and say why; no packages to guess
    guarded = _optional_imports(tree)
    names = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def inferred_requirements(folder, sources):
    local = {path.stem for path in folder.glob("*.py")} | {path.name for path in folder.iterdir() if path.is_dir()}
    modules = set()
    for source in sources:
        modules |= imported_modules(source)
    skip = set(sys.stdlib_module_names) | local | {"__future__", "__main__"}
    return sorted({IMPORT_TO_DISTRIBUTION.get(name, name) for name in modules - skip})


def find_dependencies(script):
    script = Path(script)
    source = script.read_text(encoding="utf-8-sig", errors="replace").replace("\r\n", "\n")
    declared = inline_metadata(source)
    if declared is not None:
        return Dependencies("inline metadata", sorted({normalize_requirement(item) for item in declared}))
    beside = script.parent / REQUIREMENTS
    if beside.is_file():
        return Dependencies(REQUIREMENTS, sorted({normalize_requirement(line) for line in requirements_lines(beside)
                                                 if not line.startswith("-")}), beside)
    sources = [source] + [path.read_text(encoding="utf-8-sig", errors="replace")
                          for path in sorted(script.parent.rglob("*.py")) if path != script]
    found = inferred_requirements(script.parent, sources)
    return Dependencies("imports" if found else "none", sorted({normalize_requirement(item) for item in found}))


# --- environments --------------------------------------------------------------------------------------

def base_python():
    return getattr(sys, "_base_executable", None) or sys.executable


def environment_key(dependencies):
    content = {"python": f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}."
                         f"{sys.version_info[2]}", "requirements": dependencies.requirements}
    if dependencies.requirements_file is not None:
        # Option lines (an index URL, constraints) change what gets installed, so they count too.
        content["file"] = sorted(requirements_lines(dependencies.requirements_file))
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32]


def environments_root():
    root = Path(settings.ETL_DATA_DIR) / "envs"
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass
class Environment:
    path: Path
    reused: bool

    @property
    def python(self):
        return self.path / "bin" / "python"


def ensure_environment(dependencies, log=lambda message, level="info": None):
    """The cached environment for exactly these dependencies, built (once) if missing."""
    key = environment_key(dependencies)
    final = environments_root() / key
    existed = (final / MARKER).is_file()
    # Under the lock even to reuse: the pruning job takes it too, so an environment handed out here was
    # marked as used before the job could judge it unused.
    with script_process.file_lock(environments_root() / f".{key}.lock"):
        if (final / MARKER).is_file():
            _mark_used(final)
            log(f"Reused environment {key[:12]} ({dependencies.summary()})"
                + ("" if existed else ", built meanwhile by another run"))
            return Environment(final, reused=True)
        for stale in environments_root().glob(f".build-{key}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a build that died; we hold its lock
        log(f"Building environment {key[:12]} ({dependencies.summary()}, from {dependencies.origin})")
        started = time.monotonic()
        building = environments_root() / f".build-{key}-{uuid.uuid4().hex[:8]}"
        try:
            _build(building, dependencies, log)
            (building / MARKER).write_text(json.dumps({
                "requirements": dependencies.requirements, "origin": dependencies.origin,
                "python": sys.version.split()[0], "built_at": time.time()}))
            os.rename(building, final)
        finally:
            shutil.rmtree(building, ignore_errors=True)
        _mark_used(final)
        log(f"Built environment {key[:12]} in {time.monotonic() - started:.1f} s")
    return Environment(final, reused=False)


def _mark_used(folder):
    (folder / LAST_USED).touch()


def _last_used(folder):
    for candidate in (folder / LAST_USED, folder / MARKER, folder):
        with contextlib.suppress(FileNotFoundError):
            return candidate.stat().st_mtime
    return 0.0


def _size(folder):
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def prune_environments(days=30):
    """Delete the environments no run has used for `days` days (a run that needs one again rebuilds it),
    and what crashed builds left. Returns (environments removed, bytes freed)."""
    root = environments_root()
    cutoff = time.time() - float(days) * 86400
    removed = freed = 0
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        with script_process.file_lock(root / f".{folder.name}.lock"):
            if _last_used(folder) >= cutoff:
                continue
            # Renamed under the lock: from here on no run can find it, so deleting it can take its time.
            doomed = root / f".prune-{folder.name}-{uuid.uuid4().hex[:8]}"
            os.rename(folder, doomed)
        freed += _size(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        removed += 1
    a_day_ago = time.time() - 86400
    for leftover in root.glob(".build-*"):
        key = leftover.name.split("-")[1]
        with script_process.file_lock(root / f".{key}.lock"):  # a build in progress holds it
            if leftover.exists() and _last_used(leftover) < a_day_ago:
                shutil.rmtree(leftover, ignore_errors=True)
    for leftover in root.glob(".prune-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return removed, freed


def uv_binary():
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise PipelineError("uv is not installed on the portal's server, so script environments cannot be "
                                "built", step="settings") from None
        return found


def _uv(arguments, log, timeout):
    environ = dict(os.environ)
    environ.setdefault("UV_CACHE_DIR", str(Path(settings.ETL_DATA_DIR) / "cache" / "uv"))
    environ["UV_PYTHON_DOWNLOADS"] = "never"
    environ.pop("VIRTUAL_ENV", None)
    try:
        result = subprocess.run([uv_binary(), *arguments], capture_output=True, text=True, timeout=timeout,
                                env=environ, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise PipelineError(f"Building the script's environment took longer than {timeout} seconds",
                            retryable=True, step="command") from None
    output = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    if result.returncode != 0:
        detail = " ".join(line.strip() for line in output[-6:])
        raise PipelineError(f"Could not build the script's environment: {detail}", step="command")
    for line in output:
        if line.lstrip().startswith(("+", "Installed", "Resolved")):
            log(f"uv: {line.strip()}")


def _build(folder, dependencies, log):
    timeout = getattr(settings, "ETL_ENV_BUILD_TIMEOUT", 900)
    _uv(["venv", "--quiet", "--relocatable", "--python", base_python(), str(folder)], log, timeout)
    if not dependencies.requirements and dependencies.requirements_file is None:
        return
    install = ["pip", "install", "--python", str(folder / "bin" / "python")]
    if dependencies.requirements_file is not None:
        install += ["-r", str(dependencies.requirements_file)]
    else:
        install += dependencies.requirements
    _uv(install, log, timeout)


# --- running -------------------------------------------------------------------------------------------

def run_script(ctx, script, inputs=(), step="processing"):
    """Run `script` for this run; return the files its last line listed (None when it listed none)."""
    script = Path(script)
    dependencies = find_dependencies(script)
    environment = ensure_environment(dependencies, ctx.log)
    timeout = step_timeout(ctx.task)
    with sandbox.prepared(ctx.folder, environment.path) as wrap:
        environ = script_process.script_environment(ctx, step, inputs, environment.path, sandbox.HOME)
        ctx.log(f"Running {script.name} ({step}) with {len(inputs)} input file{'s' if len(inputs) != 1 else ''}"
                " in its sandbox")
        outcome = script_process.run_streamed(
            wrap([str(environment.python), "-u", "-s", "-E", str(script), *map(str, inputs)]),
            cwd=ctx.folder, env=environ, timeout=timeout, log=ctx.log, label=script.name)
    sandbox.disarm(ctx.folder, ctx.warn)
    refused = sandbox.failed_to_start(outcome)
    if refused:
        raise PipelineError(f"The script was not run: it could not be sandboxed on this server ({refused})",
                            step="sandbox")
    label = "processing script" if step == "processing" else "script"
    if outcome.stopped:
        why = "the run was cancelled" if outcome.stopped == "cancelled" else "the run reached its timeout"
        raise PipelineError(f"The {label} and every process it started were stopped: {why}", step="timeout")
    if outcome.timed_out:
        raise PipelineError(f"The {label} ran past its timeout of {timeout:g} seconds and was stopped, with every "
                            "process it started", step="timeout")
    if outcome.returncode != 0:
        summary = script_process.error_summary(outcome.stderr_tail, script.parent)
        raise PipelineError(f"The {label} failed ({script_process.describe_exit(outcome.returncode)})"
                            + (f": {summary}" if summary else ""), step="command")
    ctx.log(f"{script.name} finished in {outcome.seconds:.1f} s")
    return listed_files(outcome.last_line, ctx.folder)


def step_timeout(task):
    """Seconds a script or command may run: the task's timeout in effect (its own, else its project's or
    organization's: tasks/inheritance.py), which the run's watcher enforces by stopping the script; this step's
    own deadline follows a few seconds later, as a backstop."""
    return (task.effective("timeout_seconds") or getattr(settings, "ETL_SCRIPT_TIMEOUT", 6 * 3600)) \
        + script_process.BACKSTOP_SECONDS


def listed_files(last_line, folder):
    """The files named by a last line such as `['out/a.csv', 'b.csv']`; None when it is not such a list."""
    text = (last_line or "").strip()
    if not text.startswith(("[", "(")):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        return None
    root = Path(os.path.realpath(folder))
    files = []
    for item in value:
        path = Path(os.path.realpath(root / item))
        if path != root and not path.is_relative_to(root):
            raise PipelineError(f"The script listed {item}, which is outside the run folder: only files inside "
                                f"{root} can become the output", step="settings")
        if not path.is_file():
            raise PipelineError(f"The script listed {item}, but there is no such file", step="settings")
        if path not in files:
            files.append(path)
    return files
