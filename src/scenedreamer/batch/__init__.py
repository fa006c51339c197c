"""Many scenes at once: a prompt file -> one run folder per scene, a manifest, local or Ray
executors (see docs/usage/batch.md). Ray is imported only by ray_executor.py, on demand."""
