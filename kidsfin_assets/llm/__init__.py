"""The LLM client's parts that know nothing of reports: the shared rate-limit bucket in the
warehouse (bucket), token prices (pricing) and the async client's HTTP transport
(transport)."""
