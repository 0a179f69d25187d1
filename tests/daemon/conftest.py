"""Daemon fixtures: the service fixtures (a Running instance on libvirt test-driver hosts)."""

from __future__ import annotations

from tests.service.conftest import make_service

__all__ = ["make_service"]
