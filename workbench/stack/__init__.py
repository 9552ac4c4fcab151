"""``workbench up``: the embedded demo stack as a supervised set of processes."""
