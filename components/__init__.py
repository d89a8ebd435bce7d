"""instructflow components: the pipeline's parts as plain functions over files.

Nothing in this package imports Prefect: a component does not know whether a flow,
`dvc repro`, the CLI or a test called it.
"""
