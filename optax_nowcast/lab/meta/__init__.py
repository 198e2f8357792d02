"""Meta-training: record weight trajectories and fit forecasters to them."""
