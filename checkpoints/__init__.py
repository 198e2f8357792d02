"""Shipped pretrained forecasters (data only); see optax_nowcast.forecasters.load."""
