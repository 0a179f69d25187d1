"""Render config.yaml: every key with its default and the one-line why from its ``Field(description=...)``.

The repository's config.yaml is this rendering; a test keeps the two equal, so the documented
defaults can never drift from the code (``balancer config example > config.yaml`` refreshes it).
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from balancer.config import Config

EXAMPLE_HOSTS = """\
# The hypervisor hosts to manage. `uri` is the control connection; `migration_uri` is what the
# source host's libvirtd dials for peer-to-peer migration (defaults to `uri`). `capacity`
# overrides what libvirt reports (e.g. to keep a reserve); `labels` feed rules.host_labels.
hosts:
  - name: compute-1
    uri: qemu+tls://compute-1.example.net/system
    migration_uri: qemu+tls://compute-1.example.net/system
    labels: {rack: r1}
  - name: compute-2
    uri: qemu+tls://compute-2.example.net/system
    labels: {rack: r2}
    capacity: {cpus: 30, memory_mib: 250000}
"""


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def _render_model(model: type[BaseModel], values: dict[str, Any], indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        value = values[key]
        if field.description:
            lines.append(f"{pad}# {field.description}")
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append(f"{pad}{key}:")
            lines += _render_model(annotation, value, indent + 1)
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return lines


def render() -> str:
    """The annotated config.yaml with every default."""
    defaults = Config().dump()
    out = [
        "# balancer configuration. Every key is shown with its default; delete what you do not change.",
        "# Validate with: balancer config check FILE",
        "",
        EXAMPLE_HOSTS.rstrip(),
    ]
    for name, field in Config.model_fields.items():
        if name == "hosts":
            continue
        out.append("")
        if field.description:
            out.append(f"# {field.description}")
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            doc = (annotation.__doc__ or "").strip().splitlines()
            if doc and not field.description:
                out.append(f"# {doc[0]}")
            out.append(f"{name}:")
            out += _render_model(annotation, defaults[name], 1)
        else:
            out.append(f"{name}: {_scalar(defaults[name])}")
    return "\n".join(out) + "\n"
