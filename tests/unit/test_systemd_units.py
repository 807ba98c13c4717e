"""The shipped systemd units: required directives, the CLI they call, verify and security."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

UNIT_DIR = Path(__file__).resolve().parents[2] / "systemd"
SYSTEM_UNITS = ("awayd.service", "awayd@.service")
USER_UNIT = "awayd-user.service"
ALL_UNITS = (*SYSTEM_UNITS, USER_UNIT)
MAX_EXPOSURE = 2.0
# Keys that systemd accumulates when repeated; any other key set twice is a silent override.
MULTI_VALUED = {"SystemCallFilter", "LoadCredential", "ReadWritePaths", "Environment"}
# Specifier values used to turn a unit's ExecStart= into a command line the CLI can parse.
SPECIFIERS = {"%i": "example", "%h": "/home/someone", "%E": "/home/someone/.config"}


@dataclass(frozen=True)
class Unit:
    name: str
    text: str
    sections: dict[str, list[tuple[str, str]]]

    def values(self, section: str, key: str) -> list[str]:
        return [v for k, v in self.sections.get(section, []) if k == key]

    def get(self, section: str, key: str) -> str | None:
        found = self.values(section, key)
        return found[-1] if found else None


def parse_unit(path: Path) -> Unit:
    """Parse a unit file: sections, repeated keys kept in order, backslash continuations."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    text = path.read_text(encoding="utf-8")
    for raw in text.splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}: {line!r} before any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key=value: {line!r}"
        current.append((key.strip(), value.strip()))
    return Unit(path.name, text, sections)


@pytest.fixture(scope="module", params=ALL_UNITS)
def unit(request: pytest.FixtureRequest) -> Unit:
    return parse_unit(UNIT_DIR / str(request.param))


@pytest.fixture(scope="module", params=SYSTEM_UNITS)
def system_unit(request: pytest.FixtureRequest) -> Unit:
    return parse_unit(UNIT_DIR / str(request.param))


def _exec_start(unit: Unit) -> list[str]:
    value = unit.get("Service", "ExecStart")
    assert value, f"{unit.name}: no ExecStart="
    return shlex.split(value)


def _expand(arg: str) -> str:
    for spec, value in SPECIFIERS.items():
        arg = arg.replace(spec, value)
    return arg


def test_units_open_with_install_instructions(unit: Unit) -> None:
    head = unit.text.split("[Unit]", 1)[0]
    assert head.startswith("#")
    assert "Install" in head
    assert "systemctl" in head


def test_units_are_type_notify_with_watchdog_and_restart_policy(unit: Unit) -> None:
    assert unit.get("Service", "Type") == "notify"
    assert unit.get("Service", "NotifyAccess") == "main"
    assert unit.get("Service", "WatchdogSec") == "60"
    assert unit.get("Service", "Restart") == "on-failure"
    assert "78" in (unit.get("Service", "RestartPreventExitStatus") or "").split()
    assert unit.get("Service", "TimeoutStopSec") == "15"
    assert unit.get("Service", "ExecReload") == "/bin/kill -HUP $MAINPID"


def test_exec_start_runs_the_daemon_with_a_config_flag(unit: Unit) -> None:
    argv = _exec_start(unit)
    assert argv[0].endswith("/bin/awayd")
    assert argv[0].startswith(("/", "%h/"))
    assert argv[1] == "run"
    assert argv.count("--config") == 1
    config = argv[argv.index("--config") + 1]
    assert config.endswith(".yaml")


def test_exec_start_paths_per_unit() -> None:
    system = _exec_start(parse_unit(UNIT_DIR / "awayd.service"))
    template = _exec_start(parse_unit(UNIT_DIR / "awayd@.service"))
    user = _exec_start(parse_unit(UNIT_DIR / USER_UNIT))
    assert system == ["/opt/awayd/bin/awayd", "run", "--config", "/etc/awayd/config.yaml"]
    assert template == ["/opt/awayd/bin/awayd", "run", "--config", "/etc/awayd/%i.yaml"]
    assert user == ["%h/.local/bin/awayd", "run", "--config", "%E/awayd/config.yaml"]


def test_exec_start_arguments_are_accepted_by_the_cli(unit: Unit) -> None:
    if importlib.util.find_spec("awayd.cli.main") is None:
        pytest.skip("awayd.cli.main is not written yet")
    cli = importlib.import_module("awayd.cli.main")
    argv = [_expand(arg) for arg in _exec_start(unit)[1:]]
    try:
        namespace = cli.build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on a usage error
        pytest.fail(f"{unit.name}: the CLI refuses {argv}: exit {exc.code}")
    config = argv[argv.index("--config") + 1]
    assert config in {str(v) for v in vars(namespace).values()}, vars(namespace)


def test_state_and_configuration_directories(unit: Unit) -> None:
    expected = "awayd/%i" if unit.name == "awayd@.service" else "awayd"
    assert unit.get("Service", "StateDirectory") == expected
    assert unit.get("Service", "StateDirectoryMode") == "0700"


def test_system_units_use_the_static_awayd_user(system_unit: Unit) -> None:
    assert system_unit.get("Service", "User") == "awayd"
    assert system_unit.get("Service", "DynamicUser") == "no"
    assert system_unit.get("Service", "ConfigurationDirectory") == "awayd"
    assert "useradd --system" in system_unit.text
    assert system_unit.get("Install", "WantedBy") == "multi-user.target"
    assert "network-online.target" in (system_unit.get("Unit", "After") or "")


def test_system_units_load_the_credentials_directory(system_unit: Unit) -> None:
    """Active, not commented out: a unit that cannot read its secrets would never log in."""
    expected = ("awayd:/etc/awayd/%i.credentials" if system_unit.name == "awayd@.service"
                else "awayd:/etc/awayd/credentials")
    assert system_unit.values("Service", "LoadCredential") == [expected]
    assert system_unit.get("Service", "ConfigurationDirectoryMode") == "0750"


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "UMask": "0077",
}
# The subset that needs no privileges, so a user manager applies it too.
USER_HARDENING = (
    "NoNewPrivileges",
    "RestrictNamespaces",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "SystemCallArchitectures",
    "UMask",
)


def test_system_units_carry_the_full_hardening_block(system_unit: Unit) -> None:
    for key, value in HARDENING.items():
        assert system_unit.get("Service", key) == value, key
    _assert_syscall_and_family_filters(system_unit)


def test_user_unit_carries_the_unprivileged_hardening() -> None:
    user = parse_unit(UNIT_DIR / USER_UNIT)
    for key in USER_HARDENING:
        assert user.get("Service", key) == HARDENING[key], key
    _assert_syscall_and_family_filters(user)
    # Mount-namespace options fail in user managers without user namespaces: comments only.
    for key in ("ProtectSystem", "ProtectHome", "PrivateTmp", "User"):
        assert user.get("Service", key) is None, key
    assert user.get("Install", "WantedBy") == "default.target"
    assert "enable-linger" in user.text


def _assert_syscall_and_family_filters(unit: Unit) -> None:
    families = unit.get("Service", "RestrictAddressFamilies")
    assert families is not None
    assert set(families.split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    filters = unit.values("Service", "SystemCallFilter")
    assert "@system-service" in filters
    assert "~@privileged @resources" in filters
    assert unit.get("Service", "SystemCallErrorNumber") == "EPERM"


def test_network_stays_reachable_and_the_reason_is_written(unit: Unit) -> None:
    assert unit.get("Service", "IPAddressDeny") is None
    assert unit.get("Service", "PrivateNetwork") is None
    if unit.name in SYSTEM_UNITS:
        assert "IPAddressDeny=" in unit.text  # mentioned in the relaxation comment


def test_no_directive_is_silently_set_twice(unit: Unit) -> None:
    for section, entries in unit.sections.items():
        keys = [k for k, _ in entries if k not in MULTI_VALUED]
        duplicates = {k for k in keys if keys.count(k) > 1}
        assert not duplicates, f"{unit.name} [{section}]: {sorted(duplicates)}"


# --- systemd-analyze, when this machine has it -------------------------------------------

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")


def _staged(unit_name: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Copy a unit where verify can load it, its awayd binary replaced by a stub that exists.

    verify refuses a unit whose ExecStart= binary is missing, and /opt/awayd is not installed
    on a test machine; everything else in the unit is checked as shipped.
    """
    env = dict(os.environ)
    stub = tmp_path / "bin" / "awayd"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    stub.chmod(0o755)
    text = (UNIT_DIR / unit_name).read_text(encoding="utf-8")
    if unit_name == USER_UNIT:
        home = tmp_path / "home"
        (home / ".local" / "bin").mkdir(parents=True)
        shutil.copy2(stub, home / ".local" / "bin" / "awayd")
        runtime = tmp_path / "run"
        runtime.mkdir(mode=0o700)
        env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime))
        env.pop("XDG_CONFIG_HOME", None)
        target = tmp_path / "awayd.service"
    else:
        text = text.replace("/opt/awayd/bin/awayd", str(stub))
        target = tmp_path / unit_name.replace("@.", "@example.")
    target.write_text(text, encoding="utf-8")
    return target, env


def _analyze(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@needs_systemd_analyze
@pytest.mark.parametrize("unit_name", ALL_UNITS)
def test_systemd_analyze_verify_accepts_the_unit(unit_name: str, tmp_path: Path) -> None:
    target, env = _staged(unit_name, tmp_path)
    mode = ["--user"] if unit_name == USER_UNIT else []
    result = _analyze([*mode, "verify", "--man=no", str(target)], env)
    output = result.stdout + result.stderr
    # Warnings (unknown keys, bad values) keep exit 0, so any line naming our file fails too.
    ours = [line for line in output.splitlines() if target.name in line]
    assert result.returncode == 0, output
    assert not ours, output


_EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


@needs_systemd_analyze
@pytest.mark.parametrize("unit_name", SYSTEM_UNITS)
def test_systemd_analyze_security_exposure_is_low(unit_name: str, tmp_path: Path) -> None:
    target, env = _staged(unit_name, tmp_path)
    result = _analyze(["security", "--offline=true", "--no-pager", str(target)], env)
    output = result.stdout + result.stderr
    if result.returncode != 0 and "offline" in output and "unrecognized" in output:
        pytest.skip("systemd-analyze predates --offline (systemd < 250)")
    found = _EXPOSURE.search(output)
    assert found, output
    assert float(found.group(1)) <= MAX_EXPOSURE, output
