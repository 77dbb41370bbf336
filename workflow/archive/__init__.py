"""Records lifecycle after a case closes: the unit archive, WORM retention, archival packages
for the state archive, and disposal (brakowanie)."""
