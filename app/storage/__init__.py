"""SQLite storage through sqlite-utils: the kiosk's one database, its schema and repositories."""
