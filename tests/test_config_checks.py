"""Config checks an SRE meets: every problem in one pass (across keys too), libvirt URIs, store URLs,
strict types, what the service needs, secrets never shown, token file modes, the store file's mode."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from balancer.config import load, parse
from balancer.errors import ConfigError
from balancer.store import Store

HOST = {"name": "h1", "uri": "test:///default"}
TOKEN = "0123456789-inline-secret-token"
PASSWORD = "pg-pass-w0rd"


def problems(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(data)
    return info.value.problems


def balancer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "balancer", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_checks_across_keys_are_reported_with_every_other_problem() -> None:
    found = problems(
        {
            "hosts": [HOST, {**HOST, "uri": "http://h1.example/"}],
            "rules": {"pins": [{"vm": "db", "hosts": ["h9"]}], "exclude_hosts": ["h8"]},
            "limits": {"bandwidth_mib_s": 500, "host_bandwidth_mib_s": 100},
            "collection": {"interval_seconds": 0},
            "automation": "full",
        }
    )
    assert {p.split(":")[0] for p in found} == {
        "hosts[1].uri",
        "hosts[1].name",
        "rules.pins[0].hosts",
        "rules.exclude_hosts[0]",
        "limits.host_bandwidth_mib_s",
        "collection.interval_seconds",
        "automation",
    }, found
    assert len(found) == 7


def test_a_cross_key_check_survives_a_broken_neighbour() -> None:
    # the pins list itself is invalid elsewhere (a rule with one VM), yet unknown hosts are named
    found = problems(
        {
            "hosts": [HOST],
            "rules": {
                "pins": [{"vm": "db", "hosts": ["h9"]}],
                "anti_affinity": [{"name": "x", "vms": ["a"]}],
            },
        }
    )
    assert any(p.startswith("rules.pins[0].hosts: 'h9' is not a configured host") for p in found), found
    assert any(p.startswith("rules.anti_affinity[0].vms") for p in found), found


@pytest.mark.parametrize(
    "uri",
    [
        "qemu+tls://compute-1.example.net/system",
        "qemu+tcp://h1/system",
        "qemu+ssh://root@h1/system?keyfile=/var/lib/balancer/.ssh/id_ed25519",
        "qemu+unix:///system?socket=/run/lab/h1/libvirt-sock",
        "qemu:///system",
        "test:///default",
        "test:///srv/hosts/host-a.xml",
    ],
)
def test_libvirt_uris_are_accepted(uri: str) -> None:
    assert parse({"hosts": [{"name": "h1", "uri": uri, "migration_uri": uri}]}).hosts[0].uri == uri


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("http://h1:8080/", "the driver 'http' is not one of qemu, test"),
        ("https://h1/system", "the driver 'https' is not one of qemu, test"),
        ("h1.example.net", "is not a libvirt URI (driver[+transport]://[host]/path)"),
        ("qemu+tls://h1/", "needs the path /system (or /session)"),
        ("qemu+tls://h1", "needs the path /system (or /session)"),
        ("qemu+https://h1/system", "the transport 'https', which is not one of libvirt's"),
        ("qemu+tls://h 1/system", "must not contain blanks"),
        ("test://", "needs a path"),
    ],
)
def test_what_is_not_a_libvirt_uri_is_refused(uri: str, says: str) -> None:
    for key in ("uri", "migration_uri"):
        host = {"name": "h1", "uri": "test:///default", key: uri}
        (line,) = problems({"hosts": [host]})
        assert line.startswith(f"hosts[0].{key}: {uri!r} "), line
        assert says in line, line


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql+psycopg://balancer@db.example:abc/balancer", "its port is not a number"),
        ("postgresql+psycopg://balancer@db.example:70000/balancer", "has the port 70000, not in 1-65535"),
        ("postgresql+psycopg2://balancer@db.example/balancer", "uses the driver 'psycopg2'"),
        ("sqlite:", "is not a database URL"),
    ],
)
def test_a_store_url_that_cannot_work_is_caught_by_the_check(url: str, says: str) -> None:
    (line,) = problems({"store": {"url": url}})
    assert line.startswith("store.url: ") and says in line, line


def test_the_database_password_is_masked_in_errors_and_in_the_effective_config() -> None:
    url = f"postgresql+psycopg://balancer:{PASSWORD}@db.example:abc/balancer"
    (line,) = problems({"store": {"url": url}})
    assert PASSWORD not in line
    assert "'postgresql+psycopg://balancer:***@db.example:abc/balancer'" in line
    good = parse({"store": {"url": f"postgresql+psycopg://balancer:{PASSWORD}@db.example/b"}})
    assert good.dump()["store"]["url"] == "postgresql+psycopg://balancer:***@db.example/b"
    assert PASSWORD in good.dump(secrets=True)["store"]["url"]


def test_tokens_are_masked_in_errors_and_in_the_effective_config() -> None:
    (short,) = problems({"api": {"tokens": [{"name": "ops", "token": "tiny-secret"}]}})
    assert "tiny-secret" not in short
    assert short.startswith("api.tokens[0].token: (***, 11 characters) is too short")
    (both,) = problems({"api": {"tokens": [{"name": "ops", "token": TOKEN, "token_file": "/x"}]}})
    assert TOKEN not in both and "token: '***'" in both
    cfg = parse({"api": {"tokens": [{"name": "ops", "token": TOKEN}]}})
    assert cfg.dump()["api"]["tokens"][0]["token"] == "***"
    assert TOKEN not in repr(cfg)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"collection": {"interval_seconds": True}}, "collection.interval_seconds: true is not a number"),
        ({"collection": {"interval_seconds": "60"}}, "collection.interval_seconds: '60' is not a number"),
        ({"service": {"shutdown_grace_seconds": False}}, "service.shutdown_grace_seconds: false is not"),
        ({"policy": {"cooldown_minutes": True}}, "policy.cooldown_minutes: true is not a number"),
        ({"collection": {"window": 2.5}}, "collection.window: 2.5 is not an integer"),
        ({"limits": {"per_source": True}}, "limits.per_source: true is not an integer"),
        ({"executor": {"auto_converge": 1}}, "executor.auto_converge: 1 is not a boolean"),
        ({"api": {"open_reads": "yes"}}, "api.open_reads: 'yes' is not a boolean"),
        ({"hosts": [{**HOST, "labels": {"rack": 1}}]}, "hosts[0].labels.rack: 1 must be a string"),
    ],
)
def test_types_are_strict(data: dict[str, Any], expected: str) -> None:
    found = problems(data)
    assert any(p.startswith(expected) for p in found), found


def test_integers_are_accepted_where_a_number_is_asked() -> None:
    cfg = parse({"collection": {"interval_seconds": 30}, "thresholds": {"cpu_high": 1}})
    assert cfg.collection.interval_seconds == 30.0


def test_unquoted_off_gets_a_hint_to_quote_it(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("automation: off\nlogging: {format: no}\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    automation, fmt = info.value.problems
    assert automation == (
        "automation: false is not one of 'off', 'recommend' or 'auto' (YAML reads unquoted "
        'yes/no/on/off/true/false as booleans: put the word in quotes, e.g. automation: "off")'
    )
    assert fmt.startswith("logging.format: false is not one of 'text' or 'json' (YAML reads unquoted")
    path.write_text('automation: "off"\n')
    assert load(path).automation == "off"


def test_no_hosts_is_refused_for_the_service_only(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("automation: auto\n")
    assert load(path).hosts == ()  # `plan --snapshot` may use a config without hosts
    with pytest.raises(ConfigError) as info:
        load(path, for_service=True)
    assert info.value.problems == [
        "hosts: is empty: the service needs at least one host to manage (see `balancer config example`)"
    ]


def secret_file(tmp_path: Path, mode: int, text: str = "file-secret-0123456789") -> Path:
    path = tmp_path / f"token-{mode:o}"
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640])
def test_a_private_token_file_is_read(tmp_path: Path, mode: int) -> None:
    path = secret_file(tmp_path, mode)
    cfg = parse({"hosts": [HOST], "api": {"tokens": [{"name": "ops", "token_file": str(path)}]}})
    assert cfg.api.tokens[0].secret() == "file-secret-0123456789"


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o666])
def test_a_token_file_others_can_read_or_the_group_can_change_is_refused(tmp_path: Path, mode: int) -> None:
    path = secret_file(tmp_path, mode)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"hosts": [HOST], "api": {"tokens": [{"name": "ops", "token_file": str(path)}]}})
    )
    load(config)  # the file is read by whoever uses the token: the service, the CLI
    with pytest.raises(ConfigError) as info:
        load(config, for_service=True)
    (line,) = info.value.problems
    assert line.startswith(f"api.tokens[0].token_file: '{path}' has mode {mode:04o}: "), line
    assert "chmod 600" in line
    assert "file-secret" not in line


def test_a_too_short_token_in_a_file_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = secret_file(tmp_path, 0o600, "short-one")
    cfg = parse({"hosts": [HOST], "api": {"tokens": [{"name": "ops", "token_file": str(path)}]}})
    with pytest.raises(ConfigError) as info:
        cfg.api.tokens[0].secret()
    assert info.value.problems == [f"token_file: '{path}' holds 9 character(s); a token needs at least 16"]


def test_config_check_prints_no_secret_and_exits_2_on_a_bad_token_file(tmp_path: Path) -> None:
    good = secret_file(tmp_path, 0o600)
    data = {
        "hosts": [HOST],
        "store": {"url": f"postgresql+psycopg://balancer:{PASSWORD}@db.example/balancer"},
        "api": {
            "tokens": [
                {"name": "ops", "token": TOKEN},
                {"name": "ro", "token_file": str(good), "role": "read"},
            ]
        },
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    for args in ((), ("--json",)):
        r = balancer("config", "check", str(config), *args)
        assert r.returncode == 0, r.stderr
        assert TOKEN not in r.stdout and PASSWORD not in r.stdout and "file-secret" not in r.stdout
        assert "***" in r.stdout
    shown = json.loads(balancer("config", "check", str(config), "--json").stdout)
    assert shown["api"]["tokens"][0]["token"] == "***"
    good.chmod(0o644)
    r = balancer("config", "check", str(config))
    assert r.returncode == 2
    assert f"api.tokens[1].token_file: '{good}' has mode 0644" in r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr


def test_config_check_of_a_hostless_file_is_exit_2_with_a_clear_message(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("automation: auto\n")
    r = balancer("config", "check", str(config))
    assert r.returncode == 2
    assert "hosts: is empty: the service needs at least one host to manage" in r.stderr


def test_run_refuses_a_config_without_hosts(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"store": {"url": f"sqlite:///{tmp_path}/b.db"}, "api": {"listen": "127.0.0.1:1"}})
    )
    try:
        r = subprocess.run(
            [sys.executable, "-m", "balancer", "run", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("balancer run started without hosts")
    assert r.returncode == 2
    assert "hosts: is empty" in r.stderr


def test_a_new_sqlite_store_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "state" / "balancer.db"
    old = os.umask(0o022)
    try:
        Store.open(f"sqlite:///{db}").close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    for extra in db.parent.glob("balancer.db-*"):  # WAL and shared-memory files, if left
        assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra
