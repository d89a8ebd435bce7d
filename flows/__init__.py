"""Prefect flows: thin wiring over components.stages (see DESIGN.md section 1)."""
