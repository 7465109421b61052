"""The paints-undo engine: Paints-UNDO's released models (lllyasviel, 2024) run as
semi-to-complete. `weights` and `engine` need no torch; the models (one a file) and the
pipeline that runs them do, and are imported only when a job runs."""
