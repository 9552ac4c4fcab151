"""ipywidgets for analysts and dashboards."""
