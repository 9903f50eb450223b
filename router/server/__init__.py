"""The HTTP edge: the only package that knows Starlette/ASGI. `app` builds the application
from `state`; `fast_path`, `chat`, `messages` and `admin` handle routes; `body` reads and
checks request bodies; `dispatch` serves a routed request over the gates and upstreams, and
`relay` streams the answer back."""
