"""HTTP transports for the upstreams: `base` (the sender protocol), `aiohttp` and `httpx`."""
