"""Generated stubs of the `exchange` proto packages."""
