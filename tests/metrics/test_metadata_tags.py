"""VM tags from the domain's own ``<metadata>`` in https://balancer.dev/xmlns/1 (docs/metadata.md)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import libvirt
from testdriver_hosts import endpoint

from balancer.metrics import libvirt_source
from balancer.metrics.collector import Collector
from balancer.metrics.domain import METADATA_NS, parse_tags
from balancer.metrics.source import NodeSample
from balancer.model import VMTags


def tags(inner: str, ns: str = METADATA_NS) -> VMTags:
    return parse_tags(
        ET.fromstring(f'<domain><metadata><b:rules xmlns:b="{ns}">{inner}</b:rules></metadata></domain>')
    )


def test_tags_are_read_from_real_domains() -> None:
    with Collector.for_endpoints([endpoint("host-a")]) as c:
        snap = c.tick(time.time())
    assert snap.vm("db1").tags == VMTags(exclude=False, pin_hosts=("host-a", "host-b"), groups=("db",))
    assert snap.vm("web1").tags == VMTags(groups=("web",))
    assert snap.vm("scratch").tags == VMTags(exclude=True)
    assert snap.vm("batch1").tags == VMTags()  # no metadata at all


def test_the_issue_example() -> None:
    assert tags('<b:exclude/><b:pin host="h1"/><b:pin host="h2"/><b:group name="db"/>') == VMTags(
        exclude=True, pin_hosts=("h1", "h2"), groups=("db",)
    )


def test_the_prefix_does_not_matter_only_the_namespace() -> None:
    assert tags('<b:group name="x"/>').groups == ("x",)
    assert tags('<b:group name="x"/>', ns="https://example.com/other") == VMTags()


def test_duplicates_blank_values_and_unknown_elements_are_dropped() -> None:
    t = tags(
        '<b:pin host="h1"/><b:pin host=" h1 "/><b:pin host=""/><b:pin/>'
        '<b:group name="g"/><b:colour name="red"/>'
    )
    assert t == VMTags(pin_hosts=("h1",), groups=("g",))


def test_no_metadata_means_no_tags() -> None:
    assert parse_tags(ET.fromstring("<domain/>")) == VMTags()
    assert parse_tags(ET.fromstring("<domain><metadata/></domain>")) == VMTags()


def test_changed_metadata_is_seen_on_the_next_tick_despite_the_parse_cache() -> None:
    conn = libvirt_source._Conn(conn=libvirt.openReadOnly("test:///default"), static=NodeSample(1, 1))
    before = "<domain><name>x</name></domain>"
    rules = f'<metadata><b:rules xmlns:b="{METADATA_NS}"><b:exclude/></b:rules></metadata>'
    after = f"<domain><name>x</name>{rules}</domain>"
    first = libvirt_source._spec(conn, "u", before)
    assert libvirt_source._spec(conn, "u", before) is first  # unchanged XML: parsed once
    assert libvirt_source._spec(conn, "u", after).tags == VMTags(exclude=True)
    conn.close()
