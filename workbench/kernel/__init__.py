"""The IPython extension loaded by the ``workbench`` kernel."""
