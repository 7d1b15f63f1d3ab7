"""Fake credentials for tests, assembled at run time: no key-shaped literal sits in the source,
yet each value has the shape a real key of its kind has (the redaction tests need the shapes)."""

from __future__ import annotations


def key_shaped(prefix: str, *parts: str) -> str:
    """`prefix` followed by `parts`: a fake secret in the shape real ones take."""
    return prefix + "".join(parts)


UPSTREAM_API_KEY = key_shaped("sk", "-test", "-upstream-key")
OPENAI_STYLE_KEY = key_shaped("sk", "-proj-", "Zq8vT3mW" * 6)
AWS_ACCESS_KEY_ID = key_shaped("AK", "IA", "IOSFODNN7", "EXAMPLE")
GITHUB_TOKEN = key_shaped("gh", "p_", "a1B2c3D4e5" * 4)
SLACK_TOKEN = key_shaped("xo", "xb-", "1234567890-", "abcdefghij")
GOOGLE_API_KEY = key_shaped("AI", "za", "SyD3x9Kq_7vLm2Np8Rt4Wb6Yc1Zf5Hj0GkE")
JWT = ".".join(
    (
        key_shaped("ey", "JhbGciOiJIUzI1NiJ9"),
        key_shaped("ey", "JzdWIiOiIxMjM0NTY3ODkwIn0"),
        "dozjgNryP4J3jVmNHl0w5N",
    )
)
PRIVATE_KEY_BLOCK = (
    key_shaped("-----BEGIN ", "OPENSSH PRIVATE KEY-----\n")
    + "b3BlbnNzaC1rZXktdjEAAAAA\nQyNTUxOQAAACDc\n"
    + key_shaped("-----END ", "OPENSSH PRIVATE KEY-----")
)
