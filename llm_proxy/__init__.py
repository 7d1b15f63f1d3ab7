"""The LLM proxy: an OpenAI-compatible chat completions endpoint in front of real upstreams.

`app` serves HTTP; `failover` is the stack's only retry loop; `backend` is the
one interface that `upstream` (any OpenAI-compatible server),
`function_backend` (a model that is a function of the conversation: the
offline demo model of `demo` and `demo_edit`) and `replay_backend` implement; `routes` maps model names to backends. See docs/llm-proxy.md.
"""
