"""Test support shipped with agora: conformance suites and offline test doubles for your own agents."""
