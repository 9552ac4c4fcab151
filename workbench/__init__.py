"""IoT sensor analytics workbench."""
