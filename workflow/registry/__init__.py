"""Registers of correspondence: incoming items (RPW) and outgoing items, with gapless numbering."""
