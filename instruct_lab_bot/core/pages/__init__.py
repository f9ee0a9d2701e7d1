"""Pure HTML pages the server renders."""
