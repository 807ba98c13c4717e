"""The configuration: YAML read into frozen, typed values (load), checked, summarised (check)."""
