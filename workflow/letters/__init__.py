"""Letters between units: ePUAP "pismo ogólne" XML (build, parse, XSD) and its printable view."""
