"""papermill runs and schedules."""
