"""Official correspondence between units: receiving signed letters into the register."""
