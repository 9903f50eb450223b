"""tierwise service: HTTP in, upstream out, money tracked (the I/O shell)."""
