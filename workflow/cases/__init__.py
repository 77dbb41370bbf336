"""Cases (sprawy): opened under a JRWA leaf class, with a gapless case reference per unit,
class and year."""
