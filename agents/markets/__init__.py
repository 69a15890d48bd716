"""Market plugins (found through the `agora.markets` entry points): roles, scenario section, phases, report section."""
