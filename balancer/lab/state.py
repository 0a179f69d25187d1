"""LabState: what `up` made, saved as D/lab.json so another process can `open` the lab."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from balancer.lab.errors import LabNotFoundError
from balancer.lab.layout import LabLayout

VirtType = Literal["qemu", "kvm"]


class LabState(BaseModel):
    """The lab's own record; written before `up` creates anything, removed after `down` is done."""

    model_config = ConfigDict(frozen=True)

    version: Literal[1] = 1
    hosts: list[str] = Field(description="host names, h1..hN")
    virt_type: VirtType = Field(description="domain type of lab guests: qemu (TCG) or kvm")
    tag: str = Field(description="4-hex tag of the lab directory; prefixes namespace names")

    def save(self, layout: LabLayout) -> None:
        tmp = layout.state_file.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n")
        tmp.replace(layout.state_file)

    @classmethod
    def load(cls, layout: LabLayout) -> LabState:
        try:
            text = layout.state_file.read_text()
        except FileNotFoundError:
            raise LabNotFoundError(f"no lab in {layout.directory} (no {layout.state_file.name})") from None
        return cls.model_validate_json(text)
