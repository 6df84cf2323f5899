"""The LLM client's parts that know nothing of reports: the shared rate-limit bucket in the
warehouse (bucket) and token prices (pricing)."""
