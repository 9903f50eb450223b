"""Anthropic's Messages API: translation to and from OpenAI's chat format, the streaming event
translator, the native upstream, and the `Wire` that lets `dispatch` serve Messages requests."""
