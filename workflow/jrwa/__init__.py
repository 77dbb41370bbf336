"""The JRWA file plan: versioned plans of classes with retention categories, loaded from
data files."""
