"""config.yaml validation: defaults, every section's bounds, and the error texts operators see."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from balancer.config import Config, load, parse
from balancer.config_example import render
from balancer.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
HOST = {"name": "h1", "uri": "test:///default"}


def problems(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(data)
    return info.value.problems


def test_empty_file_gives_documented_defaults() -> None:
    cfg = parse(None)
    assert cfg.automation == "recommend"
    assert cfg.collection.interval_seconds == 60
    assert (cfg.limits.per_source, cfg.limits.per_target) == (1, 1)
    assert cfg.executor.completion_timeout_s_per_gib == 800
    assert cfg.policy.min_improvement == pytest.approx(0.03)
    assert cfg.store.url == "sqlite:////var/lib/balancer/balancer.db"


@pytest.mark.parametrize(("hosts", "expected"), [(1, 1), (2, 1), (4, 2), (10, 5), (40, 5)])
def test_global_limit_defaults_to_min_5_half_the_hosts(hosts: int, expected: int) -> None:
    assert Config().limits.global_limit(hosts) == expected


def test_explicit_global_limit_wins() -> None:
    assert parse({"limits": {"global": 7}}).limits.global_limit(2) == 7


def test_repo_config_yaml_is_the_rendered_example_with_every_default() -> None:
    text = (REPO / "config.yaml").read_text()
    assert text == render(), "config.yaml is stale: run `balancer config example > config.yaml`"
    cfg = load(REPO / "config.yaml")
    got, want = cfg.dump(), Config().dump()
    got.pop("hosts")
    want.pop("hosts")
    assert got == want
    assert [h.name for h in cfg.hosts] == ["compute-1", "compute-2"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"limits": {"per_source": -1}}, "limits.per_source: -1 is not >= 1"),
        ({"limits": {"per_target": 0}}, "limits.per_target: 0 is not >= 1"),
        ({"limits": {"global": 0}}, "limits.global: 0 is not >= 1"),
        ({"limits": {"bandwidth_mib_s": "fast"}}, "limits.bandwidth_mib_s: 'fast' is not an integer"),
        ({"collection": {"interval_seconds": 0}}, "collection.interval_seconds: 0 is not > 0"),
        ({"collection": {"window": 0}}, "collection.window: 0 is not >= 1"),
        ({"thresholds": {"cpu_high": 1.5}}, "thresholds.cpu_high: 1.5 is not <= 1.0"),
        ({"thresholds": {"hold_ticks": 0}}, "thresholds.hold_ticks: 0 is not >= 1"),
        ({"policy": {"min_improvement": -0.1}}, "policy.min_improvement: -0.1 is not >= 0"),
        ({"executor": {"on_stall": "panic"}}, "executor.on_stall: 'panic' is not one of"),
        ({"automation": "full"}, "automation: 'full' is not one of 'off', 'recommend' or 'auto'"),
        ({"logging": {"format": "xml"}}, "logging.format: 'xml' is not one of 'text' or 'json'"),
        ({"store": {"url": "mysql://x"}}, "store.url: 'mysql://x' must start with sqlite: or postgresql"),
        ({"api": {"listen": "8787"}}, "api.listen: '8787' must be host:port"),
        ({"colection": {}}, "colection: is not a known key"),
        ({"hosts": [{"name": "h1"}]}, "hosts[0].uri: is required"),
        ({"hosts": [{"name": "bad name", "uri": "test:///default"}]}, "hosts[0].name: 'bad name' must be"),
        ({"hosts": [{"name": "h1", "uri": "nohost"}]}, "hosts[0].uri: 'nohost' is not a libvirt URI"),
        ({"hosts": [HOST, HOST]}, "hosts[1].name: 'h1' is a duplicate"),
        ({"hosts": [{**HOST, "capacity": {"cpus": 0}}]}, "hosts[0].capacity.cpus: 0 is not > 0"),
        ({"hosts": [HOST], "rules": {"pins": [{"vm": "a", "hosts": ["h9"]}]}}, "rules.pins[0].hosts: 'h9'"),
        ({"hosts": [HOST], "rules": {"exclude_hosts": ["h9"]}}, "rules.exclude_hosts[0]: 'h9' is not"),
        ({"rules": {"anti_affinity": [{"name": "db", "vms": ["a"]}]}}, "rules.anti_affinity[0].vms:"),
        (
            {"rules": {"pins": [{"vm": "a", "hosts": ["x"]}, {"vm": "a", "hosts": ["y"]}]}},
            "rules.pins: ",
        ),
        ({"api": {"tokens": [{"name": "ops"}]}}, "api.tokens[0]: {name: ops} must set exactly one of"),
        (
            {"api": {"tokens": [{"name": "ops", "token": "short"}]}},
            "api.tokens[0].token: (***, 5 characters) is too short",
        ),
        (
            {"limits": {"bandwidth_mib_s": 500, "host_bandwidth_mib_s": 100}},
            "limits.host_bandwidth_mib_s: 100 is below limits.bandwidth_mib_s (500)",
        ),
        ([1, 2], "(top level): must be a mapping"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(data: object, expected: str) -> None:
    found = problems(data)
    assert any(p.startswith(expected) for p in found), found


def test_all_problems_reported_at_once() -> None:
    found = problems({"limits": {"per_source": 0, "per_target": 0}, "automation": "x", "nope": 1})
    assert len(found) == 4
    assert {p.split(":")[0] for p in found} == {
        "limits.per_source",
        "limits.per_target",
        "automation",
        "nope",
    }


def test_load_reports_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("limits: [\n")
    with pytest.raises(ConfigError, match=r"line 2, column 1: not valid YAML"):
        load(bad)


def test_token_file_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-token-0123456789\n")
    secret.chmod(0o600)
    cfg = parse({"api": {"tokens": [{"name": "ops", "token_file": str(secret), "role": "read"}]}})
    assert cfg.api.tokens[0].secret() == "s3cr3t-token-0123456789"


def test_effective_config_round_trips_through_yaml() -> None:
    cfg = parse({"hosts": [HOST], "limits": {"global": 3}, "automation": "auto"})
    again = parse(yaml.safe_load(yaml.safe_dump(cfg.dump())))
    assert again == cfg
