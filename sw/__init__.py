"""cosparse.sw."""
