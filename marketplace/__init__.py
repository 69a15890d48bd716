"""agora marketplace services: chain clients, registry, ML workloads, privacy, ZK, and the economy runner."""

__version__ = "0.1.0"
