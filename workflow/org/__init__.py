"""Organisation: units (schools, kindergartens, the city office), departments, users, roles
and login sessions."""
