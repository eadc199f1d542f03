"""From a config to the pieces of a run: imports, model, optimizer, loss, the built task."""
