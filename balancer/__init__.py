"""balancer: keeps a libvirt/KVM cluster balanced and drains hosts by live block migration."""

__version__ = "0.1.0"

__all__ = ["__version__"]
