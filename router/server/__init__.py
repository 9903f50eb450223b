"""The HTTP edge: the only package that knows Starlette/ASGI. `app` builds the application
from `state`; `fast_path`, `chat`, `messages` and `admin` handle routes; `body` reads and
checks request bodies; `handle` is what both chat endpoints share; `dispatch` serves a routed
request over the gates and upstreams (`outcome`: what it tried), and `relay` streams the
answer back."""
