"""Citizen e-services: the public catalogue, submissions with a signed receipt, tracking by
code and PIN, supplements, the signed decision and e-mail notifications of status changes."""
