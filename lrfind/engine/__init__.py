"""The training side: the LR ladder, the sweep loop, constant-LR trials, state restore, devices."""
