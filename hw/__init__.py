"""cosparse.hw."""
