"""The HTTP edge: the only package that knows Starlette/ASGI. `app` builds the application
from `state`; `fast_path`, `chat`, `messages` and `admin` handle routes; `body` reads and
checks request bodies; `handle` is what both chat endpoints share. `routing` scores and decides
a request (`Routed`); `dispatch` serves it over the gates and upstreams, one `call` per tier
tried (`outcome`: what it tried), with `streaming` for streams and `escalation` for cheap
answers that fail a check; `relay` streams the answer back."""
