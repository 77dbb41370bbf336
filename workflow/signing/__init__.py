"""Official correspondence: XAdES signing, verification, unit keys and trust anchors."""
