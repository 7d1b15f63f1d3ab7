"""The LLM proxy: an OpenAI-compatible chat completions endpoint in front of real upstreams.

`app` serves HTTP; `failover` is the stack's only retry loop; `backend` is the
one interface that `upstream` (any OpenAI-compatible server) and
`demo_backend` (the offline demo model of `demo` and `logging_patch`)
implement; `routes` maps model names to backends. See docs/llm-proxy.md.
"""
